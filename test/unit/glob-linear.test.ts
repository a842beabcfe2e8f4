// Globs in rules (paths, header values, process paths) are matched without a backtracking regex:
// a pattern with many stars against a long text that does not match answers at once.
import { test } from "node:test";
import assert from "node:assert/strict";
import { globMatch } from "../../src/policy/glob.ts";

test("globs: * spans any run (slashes too), ? one character, the whole text must match", () => {
  assert.ok(globMatch("/v1/*", "/v1/a/b"));
  assert.ok(globMatch("/v?/x", "/v2/x"));
  assert.ok(!globMatch("/v?/x", "/v22/x"));
  assert.ok(globMatch("*", ""));
  assert.ok(!globMatch("/admin", "/admin/"));
  assert.ok(globMatch("a*b*c", "a--b--b--c"));
  assert.ok(!globMatch("a*b*c", "a--b--b--"));
  assert.ok(globMatch("*.Example.ORG", "www.example.org", true));
  assert.ok(!globMatch("*.Example.ORG", "www.example.org"));
  assert.ok(globMatch("a.b+(c)", "a.b+(c)"));
  assert.ok(!globMatch("a.b", "axb"));
});

test("a hostile path against a many-star glob is answered in linear time, not by backtracking", () => {
  const pattern = `/${"*a".repeat(12)}*b`;
  const path = `/${"a".repeat(20_000)}`;
  const started = performance.now();
  assert.equal(globMatch(pattern, path), false);
  const ms = performance.now() - started;
  // a backtracking matcher takes minutes here; linear takes milliseconds (a wide margin for load)
  assert.ok(ms < 10_000, `took ${ms.toFixed(0)} ms`);
});

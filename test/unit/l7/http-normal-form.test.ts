// The path moat judges is a fixed point: normalising what it forwards gives the same path, so no
// second decoding (by the server, or by moat itself) finds another path than the one judged.
import { test } from "node:test";
import assert from "node:assert/strict";
import { requestTarget } from "../../../src/l7/http/request-facts.ts";

test("the normal form of a path is its own normal form", () => {
  // pieces of escapes: a decoded one may complete a stray % before it into a new escape
  const alphabet = [
    "%",
    "%2",
    "%6",
    "%65",
    "%31",
    "%2e",
    "%2f",
    "%25",
    "e",
    "1",
    "a",
    "/",
    ".",
    "?",
    "#",
  ];
  let seed = 9;
  const pick = (n: number): number => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return seed % n;
  };
  for (let i = 0; i < 20_000; i++) {
    let raw = "/";
    for (let n = pick(12); n > 0; n--) raw += alphabet[pick(alphabet.length)];
    const once = requestTarget(raw);
    const twice = requestTarget(once.target);
    assert.equal(twice.path, once.path, `${raw} -> ${once.target} -> ${twice.target}`);
    assert.equal(twice.target, once.target, raw);
  }
});

test("a fragment is not part of the path judged nor of the target sent", () => {
  assert.deepEqual(requestTarget("/admin#x"), {
    path: "/admin",
    target: "/admin",
    authority: undefined,
  });
  assert.equal(requestTarget("/a?q=1#frag").target, "/a?q=1");
});

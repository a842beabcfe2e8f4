// The API token file's errors reach the daemon's log and its start-up output: a line with its
// words in the wrong order must not have its token quoted there as an unknown scope.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { readTokenFile } from "../../src/api/auth.ts";

test("a token written where the scopes go is not quoted in the error", (t) => {
  const dir = mkdtempSync(join(tmpdir(), "moat-tokens-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, "tokens");
  const secret = "9c0e4b1d7a2f3e5c8b6d0a1f";
  writeFileSync(file, `grafana ${secret} read,events\n`, { mode: 0o600 });
  assert.throws(
    () => readTokenFile(file),
    (err: Error) => {
      assert.match(err.message, new RegExp(`^API token file ${file}:1: `));
      assert.match(err.message, /NAME SCOPES TOKEN/);
      assert.ok(!err.message.includes(secret), err.message);
      return true;
    },
  );
});

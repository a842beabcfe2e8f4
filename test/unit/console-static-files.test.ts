// The console's files are held in memory: every answer of a file is written from one Buffer (a
// slow reader holds no copy of its own), and a file rebuilt or removed while the daemon runs is
// served as it now is.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from "node:fs";
import type { ServerResponse } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sendConsoleFile } from "../../src/api/console-static.ts";
import { HttpError } from "../../src/api/errors.ts";

/** What one request for `file` answers: its status and the body handed to the socket. */
function answer(dir: string, file: string): { status: number; body: unknown } {
  let status = 0;
  let body: unknown;
  const res = {
    writeHead(code: number) {
      status = code;
      return this;
    },
    end(chunk: unknown) {
      body = chunk;
    },
  } as unknown as ServerResponse;
  try {
    sendConsoleFile(res, file, dir);
  } catch (err) {
    if (!(err instanceof HttpError)) throw err;
    status = err.status;
  }
  return { status, body };
}

test("every answer of a console file is written from the same Buffer", (t) => {
  const dir = mkdtempSync(join(tmpdir(), "moat-console-static-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, "big.js"), "x".repeat(100_000));
  const first = answer(dir, "big.js");
  const second = answer(dir, "big.js");
  assert.equal(first.status, 200);
  assert.equal(String(first.body).length, 100_000);
  assert.ok(first.body === second.body, "two answers, one Buffer");
});

test("a console file rebuilt or removed while the daemon runs is served as it now is", (t) => {
  const dir = mkdtempSync(join(tmpdir(), "moat-console-static-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, "live.js");
  writeFileSync(file, "one();");
  assert.equal(String(answer(dir, "live.js").body), "one();");

  writeFileSync(file, "one(); two();"); // rewritten in place
  assert.equal(String(answer(dir, "live.js").body), "one(); two();");

  writeFileSync(`${file}.new`, "six(); ten();"); // same size, replaced by rename
  renameSync(`${file}.new`, file);
  assert.equal(String(answer(dir, "live.js").body), "six(); ten();");

  rmSync(file);
  assert.equal(answer(dir, "live.js").status, 404);
  mkdirSync(file); // a directory of that name is no file
  assert.equal(answer(dir, "live.js").status, 404);
});

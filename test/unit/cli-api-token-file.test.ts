// The CLI's --token-file: a file holding one token, alone or as a line of the daemon's token file
// ("NAME SCOPES TOKEN", "NAME TOKEN"); comments and blank lines are skipped. A file with no token
// or with several is refused with its line numbers, and never with a token in the message.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { createServer } from "node:http";
import { once } from "node:events";
import type { AddressInfo } from "node:net";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { apiTarget, call } from "../../src/cli/api/client.ts";
import { MOAT } from "../helpers/paths.ts";

const OPS = "5d7a0c1e9b3f4a2d8e6c";
const GRAFANA = "9c0e4b1d7a2f3e5c8b6d";

test("--token-file sends the one token of the file, whatever its comments", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "moat-cli-token-"));
  const seen: string[] = [];
  const server = createServer((req, res) => {
    seen.push(req.headers.authorization ?? "");
    res.writeHead(200, { "content-type": "application/json" }).end("{}");
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  t.after(() => {
    server.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const api = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  const files = {
    bare: `${OPS}\n`,
    "daemon line with a trailing comment": `# ops\nops all ${OPS}\n\n# rotated 2026-11\n`,
    "name and token, indented comment, CRLF": `  # for the CLI\r\nops ${OPS}\r\n`,
  };
  for (const [what, text] of Object.entries(files)) {
    const file = join(dir, "token");
    writeFileSync(file, text, { mode: 0o600 });
    await call(apiTarget({ api, "token-file": file }), "GET", "/v1/status");
    assert.equal(seen.pop(), `Bearer ${OPS}`, what);
  }
});

test("--token-file with no token, several, or a line that is none is refused, the token unquoted", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "moat-cli-token-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, "token");
  const cases: [string, RegExp][] = [
    ["# rotated 2026-11\n\n", /holds no token/],
    [
      `# tokens\nops all ${OPS}\ngrafana read,events ${GRAFANA}\n`,
      /holds 2 tokens \(lines 2, 3\); it must hold the one to send/,
    ],
    [
      `ops all ${OPS} # ops's token\n`,
      /:1: a line is "TOKEN", "NAME TOKEN" or "NAME SCOPES TOKEN"/,
    ],
    ["rotated 2026-11\n", /:1: a token is at least 16 characters/],
  ];
  for (const [text, message] of cases) {
    writeFileSync(file, text, { mode: 0o600 });
    assert.throws(
      () => apiTarget({ api: "127.0.0.1:9", "token-file": file }),
      (err: Error) => {
        assert.match(err.message, new RegExp(`^--token-file ${file}`));
        assert.match(err.message, message);
        assert.ok(!err.message.includes(OPS) && !err.message.includes(GRAFANA), err.message);
        return true;
      },
    );
  }
  // what a user sees: one line, exit 1, no token
  writeFileSync(file, cases[1]?.[0] ?? "", { mode: 0o600 });
  const run = await promisify(execFile)(MOAT, [
    "status",
    "--api",
    "127.0.0.1:9",
    "--token-file",
    file,
  ]).catch((err: { code: number; stderr: string }) => err);
  assert.equal((run as { code: number }).code, 1);
  assert.equal(
    (run as { stderr: string }).stderr.trim(),
    `moat: --token-file ${file} holds 2 tokens (lines 2, 3); it must hold the one to send`,
  );
});

// The API's TLS certificate and key are read as the token file is (src/host/trusted-file.ts):
// the key is a secret (root's, readable by root only), the certificate a trusted file; `moat
// check` says what the daemon would refuse.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chmodSync, chownSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { startApi } from "../../src/api/server.ts";
import type { ApiControl } from "../../src/api/control.ts";
import { checkCommand } from "../../src/cli/commands/check.ts";
import { scratchDir } from "../helpers/scratch-dir.ts";

const NOBODY = 65534;

/** A self-signed certificate and its key (0600) in `dir`, and a token file. */
function material(dir: string): { cert: string; key: string; tokenFile: string } {
  const cert = join(dir, "cert.pem");
  const key = join(dir, "key.pem");
  const ssl = spawnSync("openssl", [
    ...["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"],
    ...["-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=127.0.0.1"],
  ]);
  assert.equal(ssl.status, 0, ssl.stderr.toString());
  chmodSync(key, 0o600);
  chmodSync(cert, 0o644);
  const tokenFile = join(dir, "tokens");
  writeFileSync(tokenFile, "ops api-tls-token-0123456789abcdef\n", { mode: 0o600 });
  return { cert, key, tokenFile };
}

const control = { log: () => {} } as Partial<ApiControl> as ApiControl;

async function start(tokenFile: string, tls: { cert: string; key: string }): Promise<void> {
  const api = await startApi(control, [{ listen: "127.0.0.1:0", tokenFile, tls }]);
  await api.close();
}

test("the API's TLS key is read as a secret, its certificate as a trusted file", async (t) => {
  const d = scratchDir(t, "apitls");
  const { cert, key, tokenFile } = material(d);
  await start(tokenFile, { cert, key });

  chmodSync(key, 0o644);
  await assert.rejects(start(tokenFile, { cert, key }), /TLS key .*readable by group or others/);
  chmodSync(key, 0o600);
  chownSync(key, NOBODY, NOBODY);
  await assert.rejects(start(tokenFile, { cert, key }), /TLS key .*owned by uid 65534/);
  chownSync(key, 0, 0);

  const nd = join(d, "nobody");
  mkdirSync(nd, { mode: 0o755 });
  chownSync(nd, NOBODY, NOBODY);
  const theirs = join(nd, "cert.pem");
  writeFileSync(theirs, "");
  await assert.rejects(
    start(tokenFile, { cert: theirs, key }),
    /TLS certificate .*directory .* is owned by uid 65534/,
  );
});

test("moat check refuses the TLS key and certificate the daemon would", async (t) => {
  const d = scratchDir(t, "apitls");
  const { cert, key, tokenFile } = material(d);
  chmodSync(key, 0o644);
  chmodSync(cert, 0o666);
  const policy = join(d, "policy.yaml");
  writeFileSync(
    policy,
    [
      "version: 1",
      "mode: detect",
      "api:",
      "  listen: 127.0.0.1:9443",
      `  token_file: ${tokenFile}`,
      `  tls: { cert: ${cert}, key: ${key} }`,
      "",
    ].join("\n"),
  );
  const lines: string[] = [];
  const io = { out: (l: string) => lines.push(l), err: (l: string) => lines.push(l) };
  const code = await checkCommand.run({ values: {}, positionals: [policy] }, io);
  assert.equal(code, 1, lines.join("\n"));
  const text = lines.join("\n");
  assert.match(text, /API TLS certificate .*cert\.pem: is writable by group or others/);
  assert.match(text, /API TLS key .*key\.pem: is readable by group or others/);
});

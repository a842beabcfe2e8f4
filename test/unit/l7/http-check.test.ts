// `moat check` on layer7.http rules: http fields on a port that carries TLS never apply (moat
// does not decrypt), and it says so where the rule's http section is written.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";

const FILE = "test/fixtures/policies/http-on-tls-port.yaml";

test("moat check warns that http fields never apply inside TLS (port 443, a range over 8443)", () => {
  const run = spawnSync("bin/moat", ["check", FILE], { encoding: "utf8" });
  const warnings = run.stdout.split("\n").filter((l) => l.includes("warning:"));
  assert.deepEqual(warnings, [
    `${FILE}:10:21 rules[0].layer7.http: warning: rule 'api-paths' judges http on port 443, which carries TLS: moat never decrypts TLS, so layer7.http fields never apply inside it and the rule does not match those connections; judge them with layer7.tls (sni, certificate)`,
    `${FILE}:20:21 rules[2].layer7.http: warning: rule 'mixed' judges http on ports 443, 8443, which carry TLS: moat never decrypts TLS, so layer7.http fields never apply inside it and the rule does not match those connections; judge them with layer7.tls (sni, certificate)`,
  ]);
});

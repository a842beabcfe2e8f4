// A policy can name any file as a set file; what the file holds never comes back in a
// diagnostic: not from `POST /v1/policy/validate`, not from a refused apply, not from `moat
// check`. A set file that is /etc/shadow gives positions (FILE:LINE:COL) and no content.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { validatePolicyText } from "../../src/daemon/policy-text.ts";
import { MOAT } from "../helpers/paths.ts";

const SECRET = [
  "root:$6$Zq8kS3cr3tSalt$hashhashhashhashhash:19700:0:99999:7:::",
  "daemon:*:19700:0:99999:7:::",
  "10.1.2.3/99",
  "10.0.0.1-10.0.0.0",
  "!!secret-host",
  "80",
  "10.0.0.1/8",
  "secret-hostname.example",
  "2001:db8::/32",
];

test("set-file contents never appear in validation errors or warnings", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "moat-secrecy-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const secret = join(dir, "shadow");
  writeFileSync(secret, `${SECRET.join("\n")}\n`, { mode: 0o600 });
  const policy = join(dir, "policy.yaml");
  const text = `version: 1
sets:
  s: { file: ${secret} }
rules:
  - name: r
    direction: egress
    action: block
    layer3: { remote: [set:s] }
`;
  writeFileSync(policy, text);
  const result = await validatePolicyText(text, policy);
  const check = spawnSync(MOAT, ["check", policy], { encoding: "utf8" });
  const outputs = {
    validate: [...result.errors, ...result.warnings].join("\n"),
    check: `${check.stdout}${check.stderr}`,
  };
  assert.equal(result.ok, false);
  for (const [where, output] of Object.entries(outputs)) {
    // every bad line is reported at its position...
    for (const line of [1, 2, 3, 4, 5, 6])
      assert.match(output, new RegExp(`${secret}:${line}:1 `), `${where} names line ${line}`);
    // ...and nothing of what the lines hold
    for (const piece of [
      "Zq8kS3cr3t",
      "root",
      "daemon",
      "19700",
      "10.1.2.3",
      "/99",
      "secret-host",
      "10.0.0.0",
      "10.0.0.1",
    ])
      assert.ok(!output.includes(piece), `${where} leaks '${piece}':\n${output}`);
  }
});

test("valid set-file lines are not quoted either (hostnames a rule cannot exclude)", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "moat-secrecy-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const secret = join(dir, "hosts");
  writeFileSync(secret, "secret-hostname.example\n10.0.0.1/8\n", { mode: 0o600 });
  const text = `version: 1\nmode: prevent\nattach: { cgroup: / }\nsets:\n  s: { file: ${secret} }\nrules:\n  - name: r\n    direction: egress\n    action: allow\n    layer3: { remote: ["!set:s"] }\n`;
  const result = await validatePolicyText(text, join(dir, "policy.yaml"));
  assert.equal(result.ok, false);
  const output = [...result.errors, ...result.warnings].join("\n");
  // the refusal names the reference, never the names the file holds
  assert.match(
    output,
    /policy\.yaml:10:\d+ rules\[0\]\.layer3\.remote\[0\]: rule 'r': '!set:s' excludes a set with hostnames: /,
  );
  assert.match(
    output,
    new RegExp(`^${secret}:2:1 sets\\.s: warning: a CIDR with host bits set`, "m"),
  );
  for (const piece of ["secret-hostname", "10.0.0.1"])
    assert.ok(!output.includes(piece), `leaks '${piece}':\n${output}`);
});

// What `moat check` says of a rule's `quarantine`. The set must be a dynamic set of moat's own:
// a CrowdSec bouncer's set is replaced by each startup poll, a feed by each fetch. And the rule
// must see the local address it puts there: an outgoing connection a rule blocks at connect()
// (a process rule, a rule naming hosts) is refused before the kernel chooses that address.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { checkPolicySource, formatDiagnostic } from "../../src/config/index.ts";
import { nodeHost } from "../../src/host/policy-files.ts";

/** `moat check`'s lines for a policy of `sets` and one rule `rule` (YAML, indented 4). */
function check(rule: string, attach = "attach: { cgroup: /sys/fs/cgroup }"): string[] {
  const dir = mkdtempSync(join(tmpdir(), "moat-quarantine-check-"));
  try {
    mkdirSync(join(dir, "sets"));
    writeFileSync(join(dir, "key"), "k", { mode: 0o600 });
    const text = `version: 1
mode: prevent
${attach}
sets:
  held: { dynamic: true }
  cs: { dynamic: true, crowdsec: { url: "http://127.0.0.1:8080", key_file: key } }
  feed: { url: "http://127.0.0.1:1/drop.txt" }
  iocs: [203.0.113.0/24]
rules:
  - name: ioc
${rule}`;
    const got = checkPolicySource(text, join(dir, "p.yaml"), {
      ...nodeHost,
      setStore: join(dir, "sets"),
    });
    return got.diagnostics.map((d) => formatDiagnostic(d).replace(`${dir}/`, ""));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const egressBlock = (extra: string, set = "held") => `    direction: egress
    action: block
${extra}    quarantine: { set: ${set}, timeout: 1h }
`;

test("a quarantine into a CrowdSec bouncer's set or a feed is refused at the set's name", () => {
  const remote = "    layer3: { remote: [set:iocs] }\n";
  assert.deepEqual(check(egressBlock(remote, "cs"), ""), [
    "p.yaml:14:24 rules[0].quarantine.set: set 'cs' is filled by CrowdSec: each startup poll replaces its entries, a quarantine's among them; quarantine into a dynamic set of moat's own ({ dynamic: true })",
  ]);
  assert.deepEqual(check(egressBlock(remote, "feed"), ""), [
    "p.yaml:14:24 rules[0].quarantine.set: 'feed' is not a dynamic set (declare it as { dynamic: true })",
  ]);
});

test("a quarantine on a rule that blocks outgoing connections at connect() is refused", () => {
  assert.deepEqual(check(egressBlock("    process: { path: /usr/bin/curl }\n")), [
    "p.yaml:14:17 rules[0].quarantine: a quarantine puts the local address of the connection it matches in its set, and this rule blocks outgoing connections at connect(), before the kernel chooses that address (it names a process): quarantine from a rule without 'process' and hostnames",
  ]);
  assert.deepEqual(check(egressBlock("    layer3: { remote: [evil.example] }\n")), [
    "p.yaml:14:17 rules[0].quarantine: a quarantine puts the local address of the connection it matches in its set, and this rule blocks outgoing connections at connect(), before the kernel chooses that address (it names hosts): quarantine from a rule without 'process' and hostnames",
  ]);
});

test("a quarantine on a process rule that sees the local address is taken", () => {
  // incoming: the accept hook knows it; reported, not blocked: the tc hook reports it with it
  const cases = [
    "    direction: ingress\n    action: block\n    layer4: { protocol: tcp }\n    process: { path: /usr/sbin/sshd }\n",
    "    direction: egress\n    action: allow\n    log: true\n    process: { path: /usr/bin/curl }\n",
    "    direction: egress\n    action: block\n    mode: detect\n    process: { path: /usr/bin/curl }\n",
  ];
  for (const rule of cases)
    assert.deepEqual(check(`${rule}    quarantine: { set: held, timeout: 1h }\n`), [], rule);
});

test("with attach.cgroup, a quarantine on a rule blocking outgoing connections is warned of", () => {
  const rule = egressBlock("    layer3: { remote: [set:iocs] }\n");
  assert.deepEqual(check(rule), [
    "p.yaml:14:17 rules[0].quarantine: warning: with attach.cgroup, a local process's outgoing connection this rule blocks is refused at connect(), before the kernel chooses its local address: the quarantine puts nothing in its set for it (a forwarded connection's local address is put there)",
  ]);
  // a rule on the local address is judged by the tc hook, which knows it
  const local = egressBlock("    layer3: { local: [10.0.0.0/8], remote: [set:iocs] }\n");
  assert.deepEqual(check(local), []);
});

test("with attach.cgroup, a quarantine after a rule on the local address is not warned of", () => {
  // connect() leaves that rule and the later ones to the tc hook
  const rules = `    direction: egress
    action: allow
    layer3: { local: [192.0.2.1] }
  - name: ioc-after
${egressBlock("    layer3: { remote: [set:iocs] }\n")}`;
  assert.deepEqual(check(rules), []);
});

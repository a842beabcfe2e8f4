// Process and interface rules the socket hooks cannot enforce are refused with their position and
// a message that says what to change; enforceable ones pass.
import { test } from "node:test";
import assert from "node:assert/strict";
import { formatDiagnostic, parsePolicy } from "../../src/config/index.ts";
import { processRuleProblems } from "../../src/policy/process-support.ts";

const problems = (text: string) =>
  processRuleProblems(parsePolicy(text, "p.yaml")).map(formatDiagnostic);

test("each unenforceable process or interface rule is named at its position", () => {
  assert.deepEqual(
    problems(`version: 1
rules:
  - name: local-first
    direction: egress
    action: allow
    layer3: { local: [10.0.0.1] }
  - name: inbound
    direction: ingress
    action: block
    process: { name: [sshd] }
  - name: odd-name
    direction: egress
    action: block
    process: { name: ["*sh"], path: [usr/bin/curl] }
  - name: vpn
    direction: egress
    action: block
    interface: { tunnel: true }
`),
    [
      "p.yaml:10:14 rules[1].process: rule 'inbound' names a process but is not 'direction: egress': the socket hooks judge connections this host opens; for an incoming connection this version knows neither",
      `p.yaml:10:14 rules[1].process: rule 'inbound' names a process: set attach.cgroup (e.g. "/") so the socket hooks see the connections`,
      "p.yaml:10:14 rules[1].process: rule 'inbound' names a process after rule 'local-first' (line 3), which needs the local address or source port: connect() knows neither, so move it above",
      `p.yaml:14:14 rules[2].process: rule 'odd-name' names a process: set attach.cgroup (e.g. "/") so the socket hooks see the connections`,
      "p.yaml:14:14 rules[2].process: rule 'odd-name' names a process after rule 'local-first' (line 3), which needs the local address or source port: connect() knows neither, so move it above",
      "p.yaml:14:14 rules[2].process.name: process name '*sh': the kernel matches a name (at most 15 bytes, as comm holds it) exactly or by a trailing '*' only",
      "p.yaml:14:14 rules[2].process.path: process path 'usr/bin/curl': must be an absolute path or glob",
      `p.yaml:18:16 rules[3].interface: rule 'vpn' names an interface: set attach.cgroup (e.g. "/") so the socket hooks see the connections`,
      "p.yaml:18:16 rules[3].interface: rule 'vpn' names an interface after rule 'local-first' (line 3), which needs the local address or source port: connect() knows neither, so move it above",
    ],
  );
});

test("egress process and interface rules with attach.cgroup pass", () => {
  assert.deepEqual(
    problems(`version: 1
attach: { cgroup: / }
rules:
  - { name: curl, direction: egress, action: allow, process: { path: [/usr/bin/curl], name: ["cu*"] } }
  - { name: vpn, direction: egress, action: block, interface: { tunnel: true } }
`),
    [],
  );
});

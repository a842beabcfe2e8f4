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
      "p.yaml:10:14 rules[1].process: rule 'inbound' names a process for incoming connections but does not say 'layer4: { protocol: tcp }': the accept hook judges a TCP connection at its listener, before anything reaches the process; a UDP datagram would reach its socket before the owner is known",
      `p.yaml:10:14 rules[1].process: rule 'inbound' names a process: set attach.cgroup (e.g. "/") so the socket hooks see the connections`,
      `p.yaml:14:14 rules[2].process: rule 'odd-name' names a process: set attach.cgroup (e.g. "/") so the socket hooks see the connections`,
      "p.yaml:14:14 rules[2].process: rule 'odd-name' names a process after rule 'local-first' (line 3), which needs the local address or source port: connect() knows neither, so move it above",
      "p.yaml:14:14 rules[2].process.name: process name '*sh': the kernel matches a name (at most 15 bytes, as comm holds it) exactly or by a trailing '*' only",
      "p.yaml:14:14 rules[2].process.path: process path 'usr/bin/curl': must be an absolute path or glob",
      `p.yaml:18:16 rules[3].interface: rule 'vpn' names an interface: set attach.cgroup (e.g. "/") so the socket hooks see the connections`,
      "p.yaml:18:16 rules[3].interface: rule 'vpn' names an interface after rule 'local-first' (line 3), which needs the local address or source port: connect() knows neither, so move it above",
    ],
  );
});

test("an outgoing process or interface rule that also names the local address or source port is refused", () => {
  const policy = (rule: string) => `version: 1
attach: { cgroup: / }
rules:
  - ${rule}
`;
  assert.deepEqual(
    problems(
      policy(
        "{ name: root-from-lan, direction: any, action: block, layer4: { protocol: tcp }, process: { user: [0] }, layer3: { local: [10.0.0.2] } }",
      ),
    ),
    [
      "p.yaml:4:95 rules[0].process: rule 'root-from-lan' names a process and the local address: connect() knows neither the local address nor the source port, so the rule would never match an outgoing connection; drop 'layer3.local' from it (or write 'direction: ingress')",
    ],
  );
  assert.deepEqual(
    problems(
      policy(
        '{ name: vpn-high, direction: egress, action: block, layer4: { protocol: tcp, source_port: ["40000-50000"] }, interface: { name: [wg0] } }',
      ),
    ),
    [
      "p.yaml:4:125 rules[0].interface: rule 'vpn-high' names an interface and the source port: connect() knows neither the local address nor the source port, so the rule would never match an outgoing connection; drop 'layer4.source_port' from it",
    ],
  );
  // the accept hook knows the local address
  assert.deepEqual(
    problems(
      policy(
        "{ name: sshd-lan, direction: ingress, action: allow, layer3: { local: [10.0.0.2] }, layer4: { protocol: tcp, port: [22] }, process: { name: [sshd] } }",
      ),
    ),
    [],
  );
});

test("incoming connections: process rules on TCP, process and interface rules above any source-port rule", () => {
  assert.deepEqual(
    problems(`version: 1
attach: { cgroup: / }
rules:
  - { name: dns-any, direction: any, action: allow, layer4: { protocol: udp }, process: { name: [unbound] } }
  - { name: tunnel-in, direction: ingress, action: block, layer4: { protocol: tcp }, interface: { tunnel: true } }
  - { name: own-port, direction: ingress, action: allow, layer4: { protocol: tcp, source_port: [22] }, process: { user: [0] } }
  - { name: late-sshd, direction: ingress, action: allow, layer4: { protocol: tcp, port: [22] }, process: { name: [sshd] } }
  - { name: late-vpn, direction: ingress, action: allow, layer4: { protocol: udp }, interface: { name: [wg0] } }
`),
    [
      "p.yaml:4:89 rules[0].process: rule 'dns-any' names a process for incoming connections but does not say 'layer4: { protocol: tcp }': the accept hook judges a TCP connection at its listener, before anything reaches the process; a UDP datagram would reach its socket before the owner is known (for outgoing connections only, write 'direction: egress')",
      "p.yaml:6:113 rules[2].process: rule 'own-port' names a process for incoming connections and a source port: the packet hooks and the accept hook judge process and interface rules by tables without the client port, so drop 'source_port' from it",
      "p.yaml:7:107 rules[3].process: rule 'late-sshd' names a process for incoming connections after rule 'own-port' (line 6), which judges incoming connections by source port: the packet hooks and the accept hook judge process and interface rules by tables without the client port, so move it above",
      "p.yaml:8:96 rules[4].interface: rule 'late-vpn' names an interface for incoming connections after rule 'own-port' (line 6), which judges incoming connections by source port: the packet hooks and the accept hook judge process and interface rules by tables without the client port, so move it above",
    ],
  );
});

test("enforceable process and interface rules with attach.cgroup pass", () => {
  assert.deepEqual(
    problems(`version: 1
attach: { cgroup: / }
rules:
  - { name: curl, direction: egress, action: allow, process: { path: [/usr/bin/curl], name: ["cu*"] } }
  - { name: vpn, direction: egress, action: block, interface: { tunnel: true } }
  - { name: sshd-in, direction: ingress, action: allow, layer4: { protocol: tcp, port: [22] }, process: { name: [sshd], user: [root] } }
  - { name: web-any, direction: any, action: allow, layer4: { protocol: tcp }, process: { cgroup: /system.slice/nginx.service } }
  - { name: high-ports-in, direction: ingress, action: block, layer4: { protocol: tcp, source_port: ["0-1023"] } }
  - { name: local-out, direction: egress, action: allow, layer3: { local: [10.0.0.1] } }
`),
    [],
  );
});

test("a process or interface rule for another protocol than tcp or udp is refused", () => {
  assert.deepEqual(
    problems(`version: 1
attach: { cgroup: / }
rules:
  - name: ping-by-curl
    direction: egress
    action: block
    process: { path: [/usr/bin/curl] }
    layer4: { protocol: icmp }
  - name: tcp-by-curl
    direction: egress
    action: block
    process: { path: [/usr/bin/curl] }
    layer4: { protocol: tcp }
  - name: anything-by-curl
    direction: egress
    action: block
    process: { path: [/usr/bin/curl] }
`),
    [
      "p.yaml:7:14 rules[0].process: rule 'ping-by-curl' names a process for protocol icmp: the kernel knows the process (and interface) of TCP and UDP connections only; a process section there would never match",
    ],
  );
});

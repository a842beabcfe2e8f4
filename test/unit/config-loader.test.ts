// The loader as a user meets it: every problem, with FILE:LINE:COL and path; a model when valid.

import { test } from "node:test";
import assert from "node:assert/strict";
import { checkPolicyFile, loadPolicyFile, nodeHost } from "../../src/host/index.ts";
import {
  formatDiagnostic,
  parsePolicy,
  PolicyError,
  type PolicyHost,
  type PolicyModel,
} from "../../src/config/index.ts";

const FIXTURES = "test/fixtures/policies";

/** Every diagnostic line for a fixture, as `moat check` prints them (before its own warnings). */
function lines(file: string): string[] {
  return checkPolicyFile(`${FIXTURES}/${file}`).diagnostics.map(formatDiagnostic);
}

function parseErrors(text: string, host?: PolicyHost): string[] {
  try {
    parsePolicy(text, "p.yaml", host);
  } catch (err) {
    assert.ok(err instanceof PolicyError);
    assert.equal(err.code, "EPOLICY");
    assert.equal(err.message, err.diagnostics.map(formatDiagnostic).join("\n"));
    return err.diagnostics.map(formatDiagnostic);
  }
  assert.fail("expected a PolicyError");
}

test("schema errors: all of them, at the offending value (or key), with a readable message", () => {
  const f = `${FIXTURES}/schema-errors.yaml`;
  assert.deepEqual(lines("schema-errors.yaml"), [
    `${f}:1:10 version: must be 1, got 2`,
    `${f}:2:7 mode: must be one of detect, prevent, got 'block'`,
    `${f}:3:22 defaults.ingress: must be one of allow, block, got 'drop'`,
    `${f}:5:22 sets.corp[1]: must be an address or a port, got true`,
    `${f}:7:11 rules[0].name: must be lowercase letters, digits and '-', starting with a letter or digit, got 'Bad_Name'`,
    `${f}:8:16 rules[0].direction: must be one of ingress, egress, any, got 'in'`,
    `${f}:11:17 rules[0].layer4.protocol: must be one of tcp, udp, icmp, icmpv6, any, or a protocol number 0-255, got 'tcpp'`,
    `${f}:12:13 rules[0].layer4.port: must be a list, got 22 (write [22] for a single entry)`,
    `${f}:13:7 rules[0].layer4.prot: unknown property 'prot' (did you mean 'port'?)`,
    `${f}:14:5 rules[1].action: missing required property 'action'`,
    `${f}:16:22 rules[1].layer4.port[0]: must be <= 65535, got 70000`,
    `${f}:18:10 logging.audit: must be a mapping, got '/var/log/moat.log'`,
  ]);
});

test("semantic errors: addresses, ports, sets, set files, protocols, names, all reported", () => {
  const f = `${FIXTURES}/semantic-errors.yaml`;
  const bad = `${FIXTURES}/lists/bad.txt`;
  assert.deepEqual(lines("semantic-errors.yaml"), [
    `${f}:4:22 sets.corp[1]: warning: '10.1.2.3/8' has host bits set: it means 10.0.0.0/8`,
    `${f}:6:15 sets.mixed[1]: set 'mixed' mixes ports and addresses: '10.0.0.1' is an address, its first entry '80' is a port`,
    `${f}:8:17 sets.gone.file: cannot read set file '${FIXTURES}/lists/missing.txt': no such file or directory`,
    `${f}:13:34 rules[0].layer3.remote[1]: set 'web-ports' is a port set; this field needs addresses`,
    `${f}:13:49 rules[0].layer3.remote[2]: unknown set 'nope'`,
    `${f}:13:59 rules[0].layer3.remote[3]: '10.0.0.300' is not an IPv4 address (300 > 255)`,
    `${f}:13:73 rules[0].layer3.remote[4]: '1.2.3.9-1.2.3.1' is an empty range (start > end)`,
    `${f}:14:41 rules[0].layer4.port[1]: '90-80' is an empty range (90 > 80)`,
    `${f}:14:50 rules[0].layer4.port[2]: set 'corp' is an address set; this field needs ports`,
    `${f}:15:11 rules[1].name: duplicate rule name 'ssh' (first used at line 10)`,
    `${f}:18:37 rules[1].layer4.port: 'port' needs protocol tcp, udp or any (protocol is icmp)`,
    `${f}:22:36 rules[2].layer4.icmp: 'icmp' needs protocol icmp or icmpv6 (protocol is udp)`,
    `${f}:22:63 rules[2].layer4.max_duration: 'max_duration' needs protocol tcp (protocol is udp)`,
    `${f}:26:44 rules[3].layer4.max_duration: '8 hours' is not a duration (write e.g. 90s, 30m, 8h, 1d or 1h30m)`,
    `${f}:30:24 rules[4].layer3.remote[0]: YAML reads a leading '!' as a tag: quote it, e.g. "!10.0.0.0/8"`,
    `${f}:32:11 api.listen: a TCP listener needs 'token_file' (the API is root-only otherwise)`,
    // a set file's lines are never quoted: the position says where, the message what
    `${bad}:3:3 sets.bad: not an IP address, CIDR, "a-b" range or hostname (set-file lines are not quoted)`,
    `${bad}:4:1 sets.bad: not an IP address, CIDR, "a-b" range or hostname (set-file lines are not quoted)`,
  ]);
});

test("loadPolicyFile throws a PolicyError (code EPOLICY) whose message is one diagnostic a line", () => {
  assert.throws(
    () => loadPolicyFile(`${FIXTURES}/schema-errors.yaml`),
    (err: unknown) =>
      err instanceof PolicyError &&
      err.code === "EPOLICY" &&
      err.diagnostics.length === 12 &&
      err.message.split("\n").length === 12 &&
      err.message.startsWith(`${FIXTURES}/schema-errors.yaml:1:10 version: must be 1, got 2\n`),
  );
  assert.throws(
    () => loadPolicyFile(`${FIXTURES}/no-such-policy.yaml`),
    (err: unknown) =>
      err instanceof PolicyError &&
      err.message.startsWith(
        `${FIXTURES}/no-such-policy.yaml:1:1 (file): cannot read policy file: no such file or directory`,
      ),
  );
});

test("YAML syntax errors are reported with their position", () => {
  assert.deepEqual(parseErrors("version: 1\nrules:\n  - name: x\n   direction: [ingress\n"), [
    "p.yaml:4:1 (yaml): Sequence item without - indicator",
    "p.yaml:5:1 (yaml): Flow sequence in block collection must be sufficiently indented and end with a ]",
  ]);
});

test("an empty file, a list, a missing version", () => {
  assert.deepEqual(parseErrors(""), [
    "p.yaml:1:1 (root): the policy is empty; it needs at least 'version: 1'",
  ]);
  assert.deepEqual(parseErrors("- a\n"), ["p.yaml:1:1 (root): must be a mapping, got a list"]);
  assert.deepEqual(parseErrors("mode: detect\n"), [
    "p.yaml:1:1 version: missing required property 'version'",
  ]);
});

test("an empty value points at its key; unknown keys at the key, with the allowed ones", () => {
  assert.deepEqual(
    parseErrors(
      "version: 1\nmode: prevent\nrules:\n  - name: a\n    direction:\n    action: allow\n    colour: red\n",
    ),
    [
      "p.yaml:5:5 rules[0].direction: must be one of ingress, egress, any, got empty",
      "p.yaml:7:5 rules[0].colour: unknown property 'colour' (expected one of: name, direction, layer3, layer4, process, interface, layer7, action, mode, log, rate_limit, quarantine)",
    ],
  );
});

const ok = (text: string, host?: PolicyHost): PolicyModel => parsePolicy(text, "p.yaml", host);

test("the model: defaults, modes, addresses as intervals, ports as ranges, positions kept", () => {
  const model = ok(`version: 1
mode: detect
defaults: { ingress: block }
sets:
  corp: [10.0.0.0/8, "!10.1.0.0/16"]
  web: [80, "8000-8999"]
rules:
  - name: ssh
    direction: ingress
    action: allow
    mode: prevent
    layer3: { remote: [set:corp, "2001:db8::/32"], local: ["!10.0.0.1"] }
    layer4: { protocol: tcp, port: [22, set:web], source_port: ["1024-65535"], max_duration: 1h30m }
  - name: icmp
    direction: any
    action: block
    layer4: { protocol: icmpv6, icmp: { type: 128 } }
`);
  assert.equal(model.mode, "detect");
  assert.deepEqual(
    { ingress: model.defaults.ingress, egress: model.defaults.egress },
    { ingress: "block", egress: "allow" },
  );
  assert.deepEqual(model.attach.interfaces.value, ["*"]);
  const [ssh, icmp] = model.rules;
  assert.ok(ssh && icmp);
  assert.deepEqual(
    [ssh.name, ssh.mode, ssh.ownMode, ssh.log, ssh.direction],
    ["ssh", "prevent", true, false, "ingress"],
  );
  assert.deepEqual([icmp.mode, icmp.ownMode], ["detect", false]);
  assert.deepEqual(
    { line: ssh.pos.line, col: ssh.pos.col, path: ssh.pos.path },
    { line: 8, col: 5, path: "rules[0]" },
  );

  const remote = ssh.layer3?.remote?.entries ?? [];
  assert.equal(remote.length, 2);
  const [corp, v6] = remote;
  assert.ok(corp?.kind === "set" && v6?.kind === "interval");
  assert.equal(corp.set, "corp");
  assert.deepEqual(
    corp.entries.map((e) =>
      e.kind === "interval" ? [e.negate, e.family, e.start, e.end] : e.kind,
    ),
    [
      [false, 4, 0x0a000000n, 0x0affffffn],
      [true, 4, 0x0a010000n, 0x0a01ffffn],
    ],
  );
  assert.deepEqual(
    [v6.family, v6.start, v6.end, v6.pos.line, v6.pos.col],
    [6, 0x20010db8000000000000000000000000n, 0x20010db8ffffffffffffffffffffffffn, 12, 34],
  );
  assert.deepEqual(
    ssh.layer3?.local?.entries.map((e) => [e.negate, e.text]),
    [[true, "!10.0.0.1"]],
  );
  const l4 = ssh.layer4;
  assert.ok(l4);
  assert.equal(l4.protocol, 6);
  assert.deepEqual(
    l4.ports?.map((p) => [p.lo, p.hi, p.text, p.set]),
    [
      [22, 22, "22", undefined],
      [80, 80, "set:web", "web"],
      [8000, 8999, "set:web", "web"],
    ],
  );
  assert.deepEqual(
    l4.sourcePorts?.map((p) => [p.lo, p.hi]),
    [[1024, 65535]],
  );
  assert.equal(l4.maxDuration?.seconds, 5400);
  assert.deepEqual(
    [icmp.layer4?.protocol, icmp.layer4?.icmp?.type, icmp.layer4?.icmp?.code],
    [58, 128, undefined],
  );
});

test("set files: read relative to the policy file, comments and blanks skipped, entries keep FILE:LINE", () => {
  const model = loadPolicyFile(`${FIXTURES}/full.yaml`);
  const blocklist = model.sets.get("blocklist");
  assert.ok(blocklist?.kind === "address");
  assert.equal(blocklist.file, `${FIXTURES}/lists/blocklist.txt`);
  assert.deepEqual(model.setFiles, [`${FIXTURES}/lists/blocklist.txt`]);
  assert.deepEqual(
    blocklist.entries.map((e) => [e.text, e.pos.file, e.pos.line, e.pos.col]),
    [
      ["203.0.113.0/24", `${FIXTURES}/lists/blocklist.txt`, 2, 1],
      ["198.51.100.7", `${FIXTURES}/lists/blocklist.txt`, 3, 1],
      ["2001:db8:bad::/48", `${FIXTURES}/lists/blocklist.txt`, 5, 1],
    ],
  );
});

test("set files go through the host: the browser (or a test) can supply them", () => {
  const files: Record<string, string> = {
    "/etc/moat/ports.txt": "22\n# admin\n8000-8999\n",
    "/etc/moat/empty.txt": "# nothing yet\n",
  };
  const host: PolicyHost = {
    readFile: (path) => {
      const text = files[path];
      if (text === undefined) throw new Error("not found");
      return text;
    },
    resolve: (_policy, path) => path,
  };
  const model = ok(
    `version: 1
mode: prevent
sets:
  admin-ports: { file: /etc/moat/ports.txt }
  blocked: { file: /etc/moat/empty.txt }
rules:
  - { name: admin, direction: ingress, action: allow, layer4: { port: [set:admin-ports] } }
  - { name: blocked, direction: egress, action: block, layer3: { remote: [set:blocked] } }
`,
    host,
  );
  assert.deepEqual(
    model.rules[0]?.layer4?.ports?.map((p) => [p.lo, p.hi]),
    [
      [22, 22],
      [8000, 8999],
    ],
  );
  assert.equal(model.sets.get("blocked")?.kind, "empty");
  assert.deepEqual(
    parseErrors("version: 1\nmode: prevent\nsets:\n  x: { file: /nope.txt }\n", host),
    ["p.yaml:4:14 sets.x.file: cannot read set file '/nope.txt': not found"],
  );
});

test("mode defaults to detect, with a warning saying so", () => {
  const text = "version: 1\n";
  const model = ok(text);
  assert.equal(model.mode, "detect");
  assert.deepEqual(model.defaults.ingress, "allow");
  assert.deepEqual(checkPolicyFileText(text), [
    "p.yaml:1:1 mode: warning: 'mode' is not set: moat runs in detect mode (reports, never drops); set mode: prevent to enforce",
  ]);
});

function checkPolicyFileText(text: string): string[] {
  try {
    parsePolicy(text, "p.yaml");
  } catch {
    assert.fail("unexpected error");
  }
  // warnings are not thrown: read them through the checker
  return checkPolicy(text);
}

import { checkPolicySource } from "../../src/config/parse.ts";

function checkPolicy(text: string): string[] {
  return checkPolicySource(text, "p.yaml", nodeHost).diagnostics.map(formatDiagnostic);
}

test("rule names: syntax and uniqueness; layer7 names must be hostnames", () => {
  assert.deepEqual(
    parseErrors(`version: 1
mode: prevent
rules:
  - { name: web, direction: egress, action: allow, layer7: { http: { host: ["bad host"] }, tls: { version: ["1.5"] } } }
  - { name: web, direction: egress, action: allow, layer7: {} }
`),
    [
      "p.yaml:4:77 rules[0].layer7.http.host[0]: 'bad host' is not a valid hostname (write a name or \"*.domain\")",
      'p.yaml:4:109 rules[0].layer7.tls.version[0]: must be a TLS version like "1.2" or ">=1.2", got \'1.5\'',
      "p.yaml:5:13 rules[1].name: duplicate rule name 'web' (first used at line 4)",
      "p.yaml:5:60 rules[1].layer7: an empty 'layer7' matches no protocol; name http, tls, dns or ssh",
    ],
  );
});

test("services: absolute paths and URLs", () => {
  assert.deepEqual(
    parseErrors(`version: 1
mode: prevent
attach: { interfaces: [averyveryverylongname0], cgroup: sys }
logging: { audit: { path: audit.log } }
otel: { endpoint: "127.0.0.1:4318" }
event_publisher:
  webhooks: [{ url: "ftp://x/hook" }]
api: { listen: "unix:run/moat.sock" }
`),
    [
      "p.yaml:3:24 attach.interfaces[0]: 'averyveryverylongname0' is longer than 15 characters, the kernel's limit",
      "p.yaml:3:57 attach.cgroup: 'sys' must be an absolute path",
      "p.yaml:4:27 logging.audit.path: 'audit.log' must be an absolute path",
      "p.yaml:5:19 otel.endpoint: '127.0.0.1:4318' is not a URL",
      "p.yaml:7:21 event_publisher.webhooks[0].url: 'ftp://x/hook' must be a http:// or https:// URL",
      "p.yaml:8:16 api.listen: 'run/moat.sock' must be an absolute path",
    ],
  );
});

test("redirect: match is checked like a rule, 'to' must be IP:PORT", () => {
  assert.deepEqual(
    parseErrors(`version: 1
mode: prevent
redirect:
  - name: web
    match: { direction: egress, layer4: { protocol: icmp, port: [80] } }
    to: localhost:8888
`),
    [
      "p.yaml:5:65 redirect[0].match.layer4.port: 'port' needs protocol tcp, udp or any (protocol is icmp)",
      "p.yaml:6:9 redirect[0].to: 'localhost:8888' is not IP:PORT (write [v6]:PORT for IPv6)",
    ],
  );
  const model = ok(`version: 1
mode: prevent
redirect:
  - { name: web, match: { direction: egress, layer4: { port: [80] } }, to: "[::1]:8888", proxy_protocol: v2 }
`);
  assert.deepEqual(model.redirects[0]?.to, { ip: "::1", family: 6, port: 8888 });
  assert.equal(model.redirects[0]?.proxyProtocol, "v2");
});

test("every example policy loads", () => {
  for (const name of ["default", "server", "workstation"]) {
    const model = loadPolicyFile(`examples/${name}.yaml`);
    assert.ok(model.rules.length > 0, name);
  }
});

test("failure.daemon: enforce by default, allow when asked, anything else is an error", () => {
  const base = "version: 1\nmode: prevent\n";
  assert.equal(parsePolicy(base, "p.yaml").failure.daemon, "enforce");
  assert.equal(
    parsePolicy(`${base}failure: { daemon: allow }\n`, "p.yaml").failure.daemon,
    "allow",
  );
  const errors = parseErrors(`${base}failure:\n  daemon: open\n`);
  assert.equal(errors.length, 1, errors.join("\n"));
  assert.match(errors[0] ?? "", /^p\.yaml:4:11 failure\.daemon: /);
});

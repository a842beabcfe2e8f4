// layer7.ssh on logins (ingress client_key, user): what `moat check` accepts and refuses (with
// FILE:LINE:COL), and which keys the policy lets moat ssh-authkeys print for a user and client.
import { test } from "node:test";
import assert from "node:assert/strict";
import { checkPolicySource, formatDiagnostic, textOnlyHost } from "../../../src/config/index.ts";
import { evaluate, judgeSshLogin } from "../../../src/policy/index.ts";
import { compilePolicy } from "../../../src/policy/compile/policy-image.ts";
import { lookupImage } from "../../../src/policy/compile/lookup.ts";

// real keys made by ssh-keygen (public halves only)
const ALICE =
  "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOZ1oUmk1ZmiJZq7VZyP6Gzj7hBuEcyKGJbX7yT1cQ7a alice@laptop";
const BOB =
  "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIH3YQvQm0b4x5r8pM7k9oQn0P5aQe9w1b2yV3vWm6Tq1 bob@desk";

function check(rules: string, mode = "prevent") {
  const text = `version: 1\nmode: ${mode}\ndefaults: { ingress: block, egress: allow }\nrules:\n${rules}`;
  return checkPolicySource(text, "p.yaml", textOnlyHost);
}

function model(rules: string, mode = "prevent") {
  const c = check(rules, mode);
  assert.ok(c.model, c.diagnostics.map((d) => formatDiagnostic(d)).join("\n"));
  return c.model;
}

const errors = (rules: string) =>
  check(rules)
    .diagnostics.filter((d) => d.severity === "error")
    .map((d) => formatDiagnostic(d));

const RULES = `  - name: admins
    direction: ingress
    action: allow
    layer3: { remote: [10.1.0.0/16] }
    layer4: { protocol: tcp, port: [22] }
    layer7: { ssh: { client_key: ["${ALICE}"], user: [alice, "adm-*"] } }
  - name: no-bob
    direction: ingress
    action: block
    layer7: { ssh: { client_key: ["${BOB}"] } }
  - { name: ssh-port, direction: ingress, action: allow, layer4: { protocol: tcp, port: [22] } }
`;

const login = (user: string, ip: string, key?: string) => ({
  user,
  client: { ip, port: 50000 },
  server: { ip: "10.0.0.1", port: 22 },
  ...(key ? { key } : {}),
});

test("the keys a rule names are printed for its users and clients only", () => {
  const m = model(RULES);
  const printed = (user: string, ip: string) =>
    judgeSshLogin(m, login(user, ip))
      .filter((v) => v.printed)
      .map((v) => v.key.text);
  assert.deepEqual(printed("alice", "10.1.2.3"), [ALICE]);
  assert.deepEqual(printed("adm-x", "10.1.2.3"), [ALICE]);
  assert.deepEqual(printed("mallory", "10.1.2.3"), []);
  assert.deepEqual(printed("alice", "192.0.2.9"), []);
  const all = judgeSshLogin(m, login("alice", "10.1.2.3"));
  assert.deepEqual(
    all.map((v) => [v.verdict, v.rule]),
    [
      ["allowed", "admins"],
      ["blocked", "no-bob"],
    ],
  );
});

test("an offered key: one verdict; a key the policy does not name is refused", () => {
  const m = model(RULES);
  const [bob] = judgeSshLogin(m, login("alice", "10.1.2.3", BOB));
  assert.equal(bob?.printed, false);
  assert.equal(bob?.rule, "no-bob");
  const other = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
  const [v] = judgeSshLogin(m, login("alice", "10.1.2.3", other));
  assert.deepEqual([v?.verdict, v?.rule, v?.printed], ["blocked", "ssh-port", false]);
  assert.match(v?.reason ?? "", /names no client key/);
});

test("detect mode prints what prevent would refuse, reported as detected", () => {
  const m = model(RULES, "detect");
  const v = judgeSshLogin(m, login("alice", "10.1.2.3", BOB))[0];
  assert.deepEqual([v?.verdict, v?.printed, v?.report], ["detected", true, true]);
});

test("the evaluator: a login rule is undecided without layer7 facts", () => {
  const m = model(RULES);
  const e = evaluate(m, {
    direction: "ingress",
    protocol: "tcp",
    family: 4,
    local: { ip: "10.0.0.1", port: 22 },
    remote: { ip: "10.1.2.3", port: 50000 },
  });
  assert.equal(e.verdict, "deferred");
});

test("refusals at FILE:LINE:COL", () => {
  assert.deepEqual(
    errors(`  - name: r
    direction: egress
    action: allow
    layer7: { ssh: { client_key: ["${ALICE}"] } }
`),
    [
      "p.yaml:8:34 rules[0].layer7.ssh.client_key: layer7.ssh.client_key judges logins to this host's sshd (moat ssh-authkeys): the rule's direction must be ingress",
    ],
  );
  const bad = errors(`  - name: r
    direction: ingress
    action: allow
    layer7:
      ssh:
        client_key: ["ssh-foo AAAA", "ssh-ed25519 notbase64!", "ssh-rsa ${ALICE.split(" ")[1]}", 'from="*" ${ALICE}']
`);
  // (host_key on an ingress rule is refused with the other L7 rules: test/unit/l7/accept-match)
  assert.equal(bad.length, 4, bad.join("\n"));
  assert.match(bad[0] ?? "", /^p\.yaml:10:\d+ .*'ssh-foo' is not a public key type/);
  assert.match(bad[1] ?? "", /not base64/);
  assert.match(bad[2] ?? "", /blob is of type 'ssh-ed25519', not 'ssh-rsa'/);
  assert.match(bad[3] ?? "", /write the key alone/);
});

test("in the kernel a login rule matches nothing: the TCP connection is the next rule's", () => {
  const img = compilePolicy(model(RULES), null);
  const packet = (port: number) =>
    img.packet.rules[
      lookupImage(img.packet, {
        direction: "ingress",
        family: 4,
        protocol: 6,
        remote: Uint8Array.from([10, 1, 2, 3]), // in the login rule's addresses
        local: Uint8Array.from([10, 0, 0, 1]),
        serverPort: port,
        clientPort: 50000,
        icmpType: 0,
        icmpCode: 0,
      })
    ]?.name;
  assert.equal(packet(22), "ssh-port");
  assert.equal(packet(2222), "default");
});

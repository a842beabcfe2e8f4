// Whose answers bind names: resolv.conf's nameservers, the policy's dns.resolvers and loopback
// stubs, nothing else; /etc/hosts as shared names; name services whose lookups moat cannot
// attribute (NSS `resolve`, a running nscd) warned about when a policy uses names.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseHosts } from "../../src/dns/hosts-file.ts";
import { resolvConfNameservers, trustedResolvers } from "../../src/dns/trusted.ts";
import {
  hostsSources,
  nameServiceDiagnostics,
  nameServiceWarnings,
} from "../../src/host/name-service.ts";
import { checkPolicySource, textOnlyHost } from "../../src/config/index.ts";

function tempDir(t: { after: (fn: () => void) => void }): string {
  const dir = mkdtempSync(join(tmpdir(), "moat-dns-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test("resolv.conf nameservers, the policy's resolvers and loopback are trusted; others are not", (t) => {
  const conf = join(tempDir(t), "resolv.conf");
  writeFileSync(
    conf,
    "# comment\nsearch lab\nnameserver 10.0.0.53\nnameserver fe80::1%eth0\n  nameserver   2001:db8::53\noptions ndots:1\nnameserver bogus\n",
  );
  assert.deepEqual(resolvConfNameservers("nameserver 10.0.0.53\n#nameserver 10.9.9.9\n"), [
    "10.0.0.53",
  ]);
  const trusted = trustedResolvers(["192.0.2.53"], conf);
  for (const ip of [
    "10.0.0.53",
    "::ffff:10.0.0.53",
    "fe80::1",
    "2001:db8::53",
    "192.0.2.53",
    "127.0.0.53",
    "127.1.2.3",
    "::1",
  ])
    assert.equal(trusted.isTrusted(ip, true), true, ip);
  for (const ip of ["10.0.0.54", "8.8.8.8", "2001:db8::54", "not an ip"])
    assert.equal(trusted.isTrusted(ip, true), false, ip);
  assert.equal(
    trustedResolvers([], join(tempDir(t), "missing")).isTrusted("10.0.0.53", true),
    false,
  );
});

test("loopback is trusted only from moat's own network namespace, even when listed", (t) => {
  const conf = join(tempDir(t), "resolv.conf");
  writeFileSync(conf, "nameserver 127.0.0.53\nnameserver 10.0.0.53\n");
  const trusted = trustedResolvers(["::1", "192.0.2.53"], conf);
  for (const ip of ["127.0.0.53", "127.0.0.2", "::1", "::ffff:127.0.0.1", "0:0:0:0:0:0:0:1"]) {
    assert.equal(trusted.isTrusted(ip, true), true, `${ip} from the host's namespace`);
    assert.equal(trusted.isTrusted(ip, false), false, `${ip} from a container's namespace`);
  }
  for (const ip of ["10.0.0.53", "192.0.2.53"])
    assert.equal(trusted.isTrusted(ip, false), true, ip);
  // Docker's embedded resolver answers through dockerd, behind Docker's NAT rule
  for (const ip of ["127.0.0.11", "::ffff:127.0.0.11"])
    assert.equal(trusted.isTrusted(ip, false), true, `${ip} from a container's namespace`);
});

test("/etc/hosts: every name of a line gets its address; comments and junk skipped", () => {
  const hosts = parseHosts(
    "127.0.0.1 localhost\n# 10.1.1.1 hidden\n10.0.0.7 GitHub.com. gh # inline\n2001:db8::7 github.com\nnot-an-ip name\n\n",
  );
  assert.deepEqual(
    [...hosts],
    [
      ["localhost", ["127.0.0.1"]],
      ["github.com", ["10.0.0.7", "2001:db8::7"]],
      ["gh", ["10.0.0.7"]],
    ],
  );
});

test("NSS 'resolve' and a running nscd are warned about: their lookups lose the identity", (t) => {
  const dir = tempDir(t);
  assert.deepEqual(
    hostsSources("passwd: files\nhosts: files resolve [!UNAVAIL=return] dns # x\n"),
    ["files", "resolve", "dns"],
  );
  const nsswitch = join(dir, "nsswitch.conf");
  const proc = join(dir, "proc");
  for (const [pid, comm] of [
    ["1", "init"],
    ["812", "nscd"],
  ] as const) {
    mkdirSync(join(proc, pid), { recursive: true });
    writeFileSync(join(proc, pid, "comm"), `${comm}\n`);
  }
  writeFileSync(nsswitch, "hosts: files dns\n");
  assert.deepEqual(nameServiceWarnings({ nsswitch, procRoot: join(dir, "none") }), []);
  writeFileSync(nsswitch, "hosts: files mymachines resolve [!UNAVAIL=return] dns\n");
  const lines = nameServiceWarnings({ nsswitch, procRoot: proc });
  assert.equal(lines.length, 2);
  assert.match(lines[0] ?? "", /'hosts:' uses 'resolve' .*not seen by moat: the identity is lost/);
  assert.match(lines[1] ?? "", /^nscd runs \(pid 812\): lookups through it are not seen by moat/);
});

test("a policy that uses names gets them as warnings at its first name; others get none", (t) => {
  const dir = tempDir(t);
  const nsswitch = join(dir, "nsswitch.conf");
  writeFileSync(nsswitch, "hosts: files resolve dns\n");
  const files = { nsswitch, procRoot: join(dir, "none") };
  const model = (rules: string) => {
    const text = `version: 1\nmode: prevent\ndefaults: { ingress: allow, egress: allow }\nrules:\n${rules}`;
    const checked = checkPolicySource(text, "p.yaml", textOnlyHost);
    assert.ok(checked.model, JSON.stringify(checked.diagnostics));
    return checked.model;
  };
  const plain = model(
    "  - { name: web, direction: egress, action: allow, layer4: { protocol: tcp, port: [443] } }\n",
  );
  assert.deepEqual(nameServiceDiagnostics(plain, files), []);
  const named = model(
    "  - { name: web, direction: egress, action: allow, layer4: { protocol: tcp, port: [443] } }\n" +
      "  - name: gh\n    direction: egress\n    action: allow\n    layer3: { remote: [github.com] }\n",
  );
  const [d, ...more] = nameServiceDiagnostics(named, files);
  assert.equal(more.length, 0);
  assert.equal(d?.severity, "warning");
  assert.equal(d?.line, 9, "at the hostname entry");
  assert.match(d?.message ?? "", /the identity is lost/);
});

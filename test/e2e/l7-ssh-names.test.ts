// Outgoing SSH through the daemon's relay, judged by host name, host key and version: a real
// `ssh` under the attached cgroup logs in to two real sshds in the peer namespace (one address,
// two ports, two host keys). The rule names the server by host name (layer3.remote), which counts
// only when this client resolved that name to the address through moat's DNS proxy, and pins its
// host key. A connection to the same server by address, or by another name for the same address,
// or to the other key, is reset before the client authenticates. A reload to detect-mode rules on
// host_key and version lets every login through and reports which rule saw it.
//
// Every client runs in a cgroup of its own below the attached one: a new identity that has
// looked nothing up yet (names one identity resolved for an address would carry over).
//
// Run time: about 25 s on an idle machine (the daemon's start is most of it); keep it under 60 s.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cgroupForTest, startCgroupLab } from "../helpers/cgroup-lab.ts";
import { runIn } from "../helpers/cgroup-run.ts";
import { startDnsPeers } from "../helpers/dns-lab.ts";
import { withResolvConf } from "../helpers/dns-clients.ts";
import { daemonSaid, storedEvents, until, type EventJson } from "../helpers/l7-lab.ts";
import type { Lab } from "../helpers/netns.ts";
import { reloadPolicy } from "../helpers/policy-reload.ts";
import { makeKey, sshLoginArgs, startSshd } from "../helpers/sshd.ts";

/** The sshd whose host key the policy pins, and another one on the same address. */
const PINNED = 2201;
const OTHER = 2202;
const PORTS = `${PINNED}, ${OTHER}`;

function prevent(l: Lab, cgroup: string, pinned: string): string {
  return `version: 1
mode: prevent
defaults: { ingress: allow, egress: allow }
attach: { interfaces: [${l.ifB}], cgroup: ${cgroup} }
rules:
  - name: git-host
    direction: egress
    action: allow
    log: true
    layer3: { remote: [allowed.moat.test] }
    layer4: { protocol: tcp, port: [${PORTS}] }
    layer7: { ssh: { host_key: ["${pinned}"], version: ["SSH-2.0-OpenSSH_*"] } }
  - { name: other-ssh, direction: egress, action: block, layer4: { protocol: tcp, port: [${PORTS}] }, layer7: { ssh: {} } }
`;
}

function detect(l: Lab, cgroup: string, pinned: string): string {
  return `version: 1
mode: prevent
defaults: { ingress: allow, egress: allow }
attach: { interfaces: [${l.ifB}], cgroup: ${cgroup} }
rules:
  - { name: watch-pinned, direction: egress, action: block, mode: detect, layer3: { remote: [allowed.moat.test] }, layer4: { protocol: tcp, port: [${PORTS}] }, layer7: { ssh: { host_key: ["${pinned}"] } } }
  - { name: watch-version, direction: egress, action: block, mode: detect, layer4: { protocol: tcp, port: [${PORTS}] }, layer7: { ssh: { version: ["SSH-2.0-OpenSSH_*"] } } }
`;
}

test("L7 relay: outgoing SSH by host name, host key and version", async (t) => {
  const cg = cgroupForTest(t, "l7sshnames");
  const dir = mkdtempSync(join(tmpdir(), "moat-l7ssh-"));
  cg.onClose(() => rmSync(dir, { recursive: true, force: true }));
  const user = makeKey(dir, "user");
  const pinned = makeKey(dir, "host-pinned");
  const other = makeKey(dir, "host-other");
  const authorized = join(dir, "authorized_keys");
  writeFileSync(authorized, `${user.pub}\n`);
  const lab = await startCgroupLab(
    cg,
    "l7 ssh names",
    (l) => prevent(l, cg.cgroup, pinned.fingerprint),
    [],
  );
  const dns = await startDnsPeers(lab);
  cg.onClose(() => dns.close());
  const z = dns.zone;
  for (const [port, key] of [
    [PINNED, pinned],
    [OTHER, other],
  ] as const) {
    const sshd = await startSshd({
      dir,
      port,
      hostKeys: [key],
      address: z.allowed,
      netns: lab.a,
      config: [`AuthorizedKeysFile ${authorized}`],
    });
    cg.onClose(() => sshd.close());
  }
  /** ssh HOST -p PORT `echo logged-in`, resolving HOST through moat's stub, in a fresh cgroup. */
  const ssh = (identity: string, host: string, port: number) => {
    const d = join(cg.dir, identity);
    mkdirSync(d);
    const cmd = ["ssh", ...sshLoginArgs(user.path, host, port, "echo logged-in")];
    return runIn(lab.b, d, withResolvConf(dns.resolv.stub, cmd), 30_000);
  };
  const escape = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  /** "-> NAME (ADDRESS):PORT" with the names this ssh resolved, "-> ADDRESS:PORT" without. */
  const to = (port: number, name?: string) =>
    escape(name ? `-> ${name} (${z.allowed}):${port}` : `-> ${z.allowed}:${port}`);
  /** The daemon's line; `asked`: the server was asked (its version is in the event). */
  const line = (type: string, port: number, rule: string, name?: string, asked = true) => {
    const version = asked ? "SSH-2\\.0-OpenSSH.*" : "";
    return daemonSaid(
      lab,
      new RegExp(
        `${type} egress tcp \\S+ ${to(port, name)} SSH ${version} by rule ${rule} \\(ssh pid`,
      ),
    );
  };
  /** Refused by the relay: reset before the key exchange ends, so no login was tried. */
  const refused = (r: { status: number; stdout: string; stderr: string }) => {
    assert.equal(r.status, 255, r.stderr);
    assert.equal(r.stdout, "");
    assert.doesNotMatch(r.stderr, /Permission denied|Host key verification/);
  };

  await t.test("the pinned server, by the name this ssh resolved: logs in", async () => {
    const r = ssh("by-name", "allowed.moat.test", PINNED);
    assert.equal(r.stdout.trim(), "logged-in", r.stderr);
    await line("ALLOWED", PINNED, "git-host", "allowed.moat.test");
  });

  await t.test("the same server by address, no name looked up: reset", async () => {
    refused(ssh("by-address", z.allowed, PINNED));
    // no host key could let it through: the server is not even asked
    await line("BLOCKED", PINNED, "other-ssh", undefined, false);
  });

  await t.test("the same address under another name: reset", async () => {
    refused(ssh("other-name", "other.moat.test", PINNED));
    await line("BLOCKED", PINNED, "other-ssh", "other.moat.test", false);
  });

  await t.test("the named address, but another host key: reset", async () => {
    refused(ssh("other-key", "allowed.moat.test", OTHER));
    await line("BLOCKED", OTHER, "other-ssh", "allowed.moat.test");
  });

  await t.test("detect: host_key and version rules report, the logins go through", async () => {
    await reloadPolicy(lab, detect(lab, cg.cgroup, pinned.fingerprint));
    const key = ssh("watched-key", "allowed.moat.test", PINNED);
    assert.equal(key.stdout.trim(), "logged-in", key.stderr);
    await line("DETECTED", PINNED, "watch-pinned", "allowed.moat.test");
    const version = ssh("watched-version", z.allowed, OTHER);
    assert.equal(version.stdout.trim(), "logged-in", version.stderr);
    await line("DETECTED", OTHER, "watch-version");
  });

  await t.test("the stored events: names, host key, version, how the relay left", async () => {
    const relayed = await relayEvents(lab, 6);
    assert.deepEqual(
      relayed.map((e) => [
        e.type,
        e.rule,
        e.remote?.port,
        e.remote?.names,
        e.layer7?.ssh?.host_key,
        e.relay?.splice === "none" ? "none" : "spliced",
      ]),
      [
        ["allowed", "git-host", PINNED, ["allowed.moat.test"], pinned.fingerprint, "spliced"],
        ["blocked", "other-ssh", PINNED, [], undefined, "none"],
        ["blocked", "other-ssh", PINNED, ["other.moat.test"], undefined, "none"],
        ["blocked", "other-ssh", OTHER, ["allowed.moat.test"], other.fingerprint, "none"],
        ["detected", "watch-pinned", PINNED, ["allowed.moat.test"], pinned.fingerprint, "spliced"],
        ["detected", "watch-version", OTHER, [], other.fingerprint, "spliced"],
      ],
    );
    // the server's version wherever it was asked (its key is there too)
    for (const e of relayed.filter((e) => e.layer7?.ssh?.host_key))
      assert.match(e.layer7?.ssh?.version ?? "", /^SSH-2\.0-OpenSSH_/);
  });
});

/** The relay's stored events, once there are `count` (all there are after 20 s, for the diff). */
async function relayEvents(
  lab: Parameters<typeof storedEvents>[0],
  count: number,
): Promise<EventJson[]> {
  const relayed = () => storedEvents(lab).filter((e) => e.hook === "l7_relay");
  return until(`${count} relay events`, () => {
    const all = relayed();
    return all.length >= count ? all : undefined;
  }).catch(() => relayed());
}

// Hostname rules as a user sees them: real programs (curl, python3, dig, kdig) under the attached
// cgroup resolve names through a stub resolver (127.0.0.53) or straight from the lab's resolvers
// (dns-lab.ts), and moat allows a connection to a named host only to the program that looked
// the name up, while the answer lives. Each case runs in a cgroup of its own below the attached
// one: a new identity that has looked nothing up yet (names learnt by one identity for an
// address merge, so two cases sharing an identity could pass for the wrong reason).
//
// Run time: about 60 s on 2 cores (the daemon's start ~8 s, the two race rounds ~15 s each, the
// TTL waits ~8 s); keep it under 90 s.
import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseDocument } from "yaml";
import { cgroupForTest, startCgroupLab, startPeerHelper } from "../helpers/cgroup-lab.ts";
import { dnsZone, RACE_NAMES, STUB, type DnsZone } from "../helpers/dns-lab.ts";
import {
  curl,
  curlByIp,
  dig,
  digLoop,
  kdig,
  pyConnect,
  pyHold,
  pyRace,
  pySteps,
} from "../helpers/dns-clients.ts";
import { startDnsIdentities } from "../helpers/dns-identities.ts";
import type { MoatLab } from "../helpers/moat-lab.ts";
import { sh, type Lab } from "../helpers/netns.ts";
import { MOAT, ROOT } from "../helpers/paths.ts";
import { storedEvents, until } from "../helpers/stored-events.ts";
import { reloadPolicy } from "../helpers/policy-reload.ts";

/** Each round of the race: new names, each resolved and connected to at once. */
const RACE_ROUND = 1000;

/** The rules every case uses; `dns` is the policy's dns section, if any. */
function policy(l: Lab & { auditPath: string }, cgroup: string, dns = ""): string {
  return `version: 1
mode: prevent
defaults: { ingress: allow, egress: block }
attach: { interfaces: [${l.ifB}], cgroup: ${cgroup} }
logging: { audit: { path: ${l.auditPath} } }
${dns}rules:
  - { name: no-blocked, direction: egress, action: block, layer7: { dns: { name: [blocked.moat.test] } } }
  - { name: watch-watched, direction: egress, action: block, mode: detect, layer7: { dns: { name: [watched.moat.test] } } }
  - { name: dns, direction: egress, action: allow, layer4: { protocol: udp, port: [53] } }
  - { name: dns-tcp, direction: egress, action: allow, layer4: { protocol: tcp, port: [53] } }
  - name: web
    direction: egress
    action: allow
    log: true
    layer3: { remote: [allowed.moat.test] }
    layer4: { protocol: tcp, port: [80] }
    process: { name: [curl, "python3*"] }
  - { name: big, direction: egress, action: allow, layer3: { remote: [big.moat.test] }, layer4: { protocol: tcp, port: [80] }, process: { name: ["python3*"] } }
  - { name: race, direction: egress, action: allow, layer3: { remote: ["**.race.moat.test"] }, layer4: { protocol: tcp, port: [80] }, process: { name: ["python3*"] } }
  - { name: one-label, direction: egress, action: allow, layer3: { remote: ["*.moat.test"] }, layer4: { protocol: tcp, port: [8081] }, process: { name: [curl] } }
  - { name: any-depth, direction: egress, action: allow, layer3: { remote: ["**.moat.test"] }, layer4: { protocol: tcp, port: [8082] }, process: { name: [curl] } }
`;
}

/** The dns section of the later cases: the lab's resolvers trusted, bindings of 1 s + 1 s. */
function dnsSection(z: DnsZone): string {
  const servers = [z.upstream, z.unbound, spoofing(z).server];
  return `dns: { resolvers: [${servers.join(", ")}], min_ttl: 1s, grace: 1s }\n`;
}

/**
 * The resolver cname-spoof-dns.ts (in namespace a, trusted by dnsSection) and the address it
 * gives every name it says is an alias of allowed.moat.test: in the lab's /24, beside dns-lab's.
 */
function spoofing(z: DnsZone): { server: string; address: string } {
  const net = z.upstream.replace(/\.1$/, "");
  return { server: `${net}.13`, address: `${net}.26` };
}

/** cname-spoof-dns.ts on `spoof.server` in `lab`'s namespace a, once it listens; ended with `t`. */
async function startSpoofer(
  t: TestContext,
  lab: MoatLab,
  spoof: { server: string; address: string },
) {
  for (const ip of [spoof.server, spoof.address])
    sh("ip", ["-n", lab.a, "addr", "add", `${ip}/32`, "dev", lab.ifA]);
  const args = [spoof.server, "allowed.moat.test", spoof.address];
  return startPeerHelper(lab, "cname-spoof-dns.ts", args, (end) => t.after(end));
}

/** examples/workstation.yaml, adapted to the lab: its interface, cgroup, audit log, names. */
function workstation(lab: MoatLab, cgroup: string): string {
  const doc = parseDocument(readFileSync(`${ROOT}examples/workstation.yaml`, "utf8"));
  doc.setIn(["attach", "interfaces"], [lab.ifB]);
  doc.setIn(["attach", "cgroup"], cgroup);
  doc.setIn(["logging", "audit", "path"], lab.auditPath);
  // the lab's addresses are private ones: the example's "lan" would allow them all
  doc.setIn(["sets", "lan"], ["192.0.2.0/24"]);
  // curl's named hosts: the lab's name in place of the real code hosts
  doc.setIn(["sets", "code-hosts"], ["allowed.moat.test"]);
  // the tracker lookups it refuses: a name of the lab (the lab answers no real name)
  const rules = (doc.toJS() as { rules: { name: string }[] }).rules;
  const trackers = rules.findIndex((r) => r.name === "no-tracker-lookups");
  doc.setIn(["rules", trackers, "layer7", "dns", "name"], ["blocked.moat.test"]);
  copyFileSync(
    `${ROOT}examples/workstation-blocklist.txt`,
    join(lab.dir, "workstation-blocklist.txt"),
  );
  return doc.toString();
}

interface MoatEventJson {
  type: string;
  rule?: string;
  remote?: { ip: string; port: number; names?: string[] };
  process?: { name: string } | null;
  layer7?: { dns?: { name: string } } | null;
  dns?: {
    query: string;
    qtype: string;
    rcode: string;
    answers: string[];
    trusted: boolean;
  };
}

/** The newest generation the daemon reported applying. */
function generation(lab: MoatLab): number {
  const all = lab.daemon.lines.map((l) => /applied: generation (\d+)/.exec(l)?.[1]);
  return Math.max(0, ...all.filter((g) => g !== undefined).map(Number));
}

/** A lab's names and addresses without the lab (for `moat check`). */
function createLabShape(): Lab & { auditPath: string } {
  const none = () => -1;
  return {
    tag: "check",
    a: "a",
    b: "b",
    ifA: "veth-a",
    ifB: "veth-b",
    v4: { a: "10.231.1.1", b: "10.231.1.2", b2: "10.231.1.3" },
    v6: { a: "fd00:231:1::1", b: "fd00:231:1::2" },
    inA: none,
    inB: none,
    cleanup: () => {},
    auditPath: "/var/log/moat/audit.log",
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test("moat check accepts the policies below: hostname entries, wildcards, layer7.dns, dns", () => {
  const dir = mkdtempSync(join(tmpdir(), "moat-dns-check-"));
  try {
    const lab = createLabShape();
    for (const [name, text] of [
      // the root cgroup: one that exists on every host moat check runs on
      ["base.yaml", policy(lab, "/")],
      ["dns.yaml", policy(lab, "/", dnsSection(dnsZone(lab)))],
    ] as const) {
      writeFileSync(join(dir, name), text);
      const r = spawnSync(MOAT, ["check", join(dir, name)], { encoding: "utf8" });
      assert.equal(r.status, 0, `moat check ${name}:\n${r.stdout}${r.stderr}`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("DNS names: a hostname rule opens the address to the program that looked it up", async (t) => {
  const cg = cgroupForTest(t, "names");
  const lab = await startCgroupLab(cg, "dns names", (l) => policy(l, cg.cgroup), [
    "tcp:80,8081,8082",
  ]);
  const { zone: z, resolv, fresh } = await startDnsIdentities(cg, lab);
  const ip = (name: string, addr: string) => `${name} \\(${addr.replaceAll(".", "\\.")}\\)`;

  await t.test("curl reaches allowed.moat.test; the event names it", async () => {
    const r = curl(fresh("named"), resolv.stub, "http://allowed.moat.test/");
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, "port 80\n");
    const line = new RegExp(
      `ALLOWED egress tcp \\S+ -> ${ip("allowed.moat.test", z.allowed)}:80 .*by rule web \\(curl pid \\d+\\)`,
    );
    await lab.daemon.waitFor(line);
    await until("the audit log's line", () => (line.test(lab.audit()) ? true : undefined));
    const allowed = await until("the connection event with its names", () =>
      storedEvents<MoatEventJson>(lab).find(
        (e) => e.type === "allowed" && e.remote?.ip === z.allowed,
      ),
    );
    assert.equal(allowed.rule, "web");
    assert.deepEqual(allowed.remote?.names, ["allowed.moat.test"]);
    // the lookups are events of their own: the query, its answer, the program that asked
    const query = await until("curl's query as a dns event", () =>
      storedEvents<MoatEventJson>(lab).find(
        (e) => e.type === "dns" && e.dns?.query === "allowed.moat.test" && e.dns.qtype === "A",
      ),
    );
    assert.equal(query.process?.name, "curl");
    assert.equal(query.dns?.rcode, "NOERROR");
    assert.deepEqual(query.dns?.answers, [z.allowed]);
    assert.equal(query.dns?.trusted, true);
    assert.deepEqual(query.remote && { ip: query.remote.ip, port: query.remote.port }, {
      ip: STUB,
      port: 53,
    });
  });

  await t.test("other.moat.test, at the same address, is refused: EPERM at connect", async () => {
    const r = curl(fresh("other"), resolv.stub, "http://other.moat.test/");
    // 7: could not connect (EPERM at connect(); a dropped SYN would be 28, a timeout)
    assert.equal(r.status, 7, r.stderr);
    await lab.daemon.waitFor(
      new RegExp(
        `BLOCKED egress tcp \\S+ -> ${ip("other.moat.test", z.allowed)}:80 .*by rule default \\(curl pid \\d+\\)`,
      ),
    );
  });

  await t.test("one program's lookup opens nothing for another: by IP they are refused", () => {
    const where = fresh("by-ip");
    const looked = dig(where, STUB, "allowed.moat.test");
    assert.deepEqual(looked.addresses, [z.allowed], looked.stdout);
    assert.equal(curlByIp(where, `http://${z.allowed}/`).status, 7, "curl never looked it up");
    assert.equal(pyConnect(where, resolv.stub, z.allowed, 80).result, "EPERM");
    // curl's own lookup opens it for curl, still not for python3
    assert.equal(curl(where, resolv.stub, "http://allowed.moat.test/").status, 0);
    assert.equal(curlByIp(where, `http://${z.allowed}/`).status, 0, "curl looked it up now");
    assert.equal(pyConnect(where, resolv.stub, z.allowed, 80).result, "EPERM");
  });

  await t.test("a CNAME chain binds: cname.moat.test -> allowed.moat.test", () => {
    const where = fresh("cname");
    const r = curl(where, resolv.stub, "http://cname.moat.test/");
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(pyConnect(where, resolv.stub, "cname.moat.test", 80), {
      result: "connected",
      addr: z.allowed,
      addrs: [z.allowed],
    });
  });

  await t.test("wildcards: *. is one label below, **. any depth, neither the name itself", () => {
    const where = fresh("wild");
    const status = (host: string, port: number) =>
      curl(where, resolv.stub, `http://${host}:${port}/`).status;
    assert.equal(status("allowed.moat.test", 8081), 0, "*.moat.test: one label");
    assert.equal(status("a.b.deep.moat.test", 8081), 7, "*.moat.test: not three labels");
    assert.equal(status("moat.test", 8081), 7, "*.moat.test: not the apex");
    assert.equal(status("allowed.moat.test", 8082), 0, "**.moat.test: one label");
    assert.equal(status("a.b.deep.moat.test", 8082), 0, "**.moat.test: three labels");
    assert.equal(status("moat.test", 8082), 7, "**.moat.test: not the apex");
  });

  await t.test("layer7.dns: REFUSED at once in prevent mode, answered in detect mode", async () => {
    const where = fresh("queries");
    const refused = dig(where, STUB, "blocked.moat.test");
    assert.equal(refused.rcode, "REFUSED", refused.stdout);
    assert.deepEqual(refused.addresses, []);
    await lab.daemon.waitFor(/BLOCKED egress udp .*:53 .*by rule no-blocked \(dig pid \d+\)/);
    assert.equal(dig(where, STUB, "blocked.moat.test", ["+tcp"]).rcode, "REFUSED", "over TCP");
    assert.equal(kdig(where, STUB, "blocked.moat.test").rcode, "REFUSED", "kdig");
    // the rule's own mode is detect: the answer comes, and the query is reported
    const detected = dig(where, STUB, "watched.moat.test");
    assert.equal(detected.rcode, "NOERROR", detected.stdout);
    assert.deepEqual(detected.addresses, [z.judged]);
    await lab.daemon.waitFor(/DETECTED egress udp .*:53 .*by rule watch-watched \(dig pid \d+\)/);
    const event = await until("the detected query's event", () =>
      storedEvents<MoatEventJson>(lab).find(
        (e) => e.type === "detected" && e.rule === "watch-watched",
      ),
    );
    assert.deepEqual(event.layer7?.dns, { name: "watched.moat.test" });
    const query = await until("the refused query as a dns event", () =>
      storedEvents<MoatEventJson>(lab).find(
        (e) => e.type === "dns" && e.dns?.query === "blocked.moat.test",
      ),
    );
    assert.equal(query.dns?.rcode, "REFUSED");
  });

  await t.test("a >512-byte answer: truncated over UDP, asked again over TCP, bound", () => {
    const where = fresh("big");
    const d = dig(where, STUB, "big.moat.test", ["+noedns"]);
    assert.ok(d.retriedOverTcp, d.stdout);
    assert.equal(d.addresses.length, z.big.length);
    // glibc asks without EDNS (512 bytes): python3's lookup takes the TCP path too
    const c = pyConnect(where, resolv.stub, "big.moat.test", 80);
    assert.equal(c.result, "connected", JSON.stringify(c));
    assert.equal(c.addrs?.length, z.big.length);
  });

  await t.test(
    "race: a new name resolved then connected at once, 1000 times, under load",
    async () => {
      const where = fresh("race");
      const load = digLoop(fresh("race-load"), STUB, ["allowed.moat.test", "cname.moat.test"]);
      let answered: number;
      let round;
      try {
        round = await pyRace(where, resolv.stub, 0, RACE_ROUND, 80);
      } finally {
        answered = load.stop();
      }
      assert.equal(round.done, RACE_ROUND);
      assert.deepEqual(round.failed, [], `${round.failed.length} connects failed`);
      assert.ok(answered > 10, `the load: ${answered} answers`);
    },
  );

  await t.test("race: the same while the policy is reloaded again and again", async () => {
    const where = fresh("race-reload");
    const before = generation(lab);
    const hup = setInterval(() => lab.daemon.proc.kill("SIGHUP"), 300);
    // rounds of the names the first race did not use, again and again, until three reloads were
    // applied while they ran (a reload waits as long as the one before took: a slow machine
    // runs more rounds)
    const chunk = 350;
    const chunks = Math.floor((RACE_NAMES - RACE_ROUND) / chunk);
    let rounds = 0;
    try {
      while (generation(lab) - before < 3) {
        assert.ok(rounds < 40, `${generation(lab) - before} reloads in ${rounds} rounds`);
        const first = RACE_ROUND + (rounds % chunks) * chunk;
        const round = await pyRace(where, resolv.stub, first, chunk, 80);
        assert.equal(round.done, chunk);
        assert.deepEqual(round.failed, [], `${round.failed.length} connects failed`);
        rounds++;
      }
    } finally {
      clearInterval(hup);
    }
  });

  // from here: the lab's resolvers named in dns.resolvers, bindings of 1 s + 1 s
  await reloadPolicy(lab, policy(lab, cg.cgroup, dnsSection(z)));

  await t.test("resolvers named in dns.resolvers are trusted: unbound, the upstream", () => {
    for (const [name, file] of [
      ["unbound", resolv.unbound],
      ["upstream", resolv.upstream],
    ] as const) {
      const c = pyConnect(fresh(name), file, "allowed.moat.test", 80);
      assert.equal(c.result, "connected", `${name}: ${JSON.stringify(c)}`);
    }
    assert.deepEqual(kdig(fresh("kdig"), z.unbound, "allowed.moat.test").addresses, [z.allowed]);
  });

  await t.test("an answer from an untrusted server binds nothing", async () => {
    const c = pyConnect(fresh("untrusted"), resolv.untrusted, "allowed.moat.test", 80);
    assert.equal(c.addr, z.untrustedAnswer, "the answer reaches the program unchanged");
    assert.equal(c.result, "EPERM");
    const query = await until("the untrusted answer's dns event", () =>
      storedEvents<MoatEventJson>(lab).find(
        (e) => e.type === "dns" && e.dns?.answers.includes(z.untrustedAnswer) === true,
      ),
    );
    assert.equal(query.dns?.trusted, false);
  });

  await t.test(
    "an alias's own address is not the CNAME target's: allowed.moat.test's rule refuses it",
    async (s) => {
      const spoof = spoofing(z);
      await startSpoofer(s, lab, spoof);
      const resolvSpoof = join(lab.dir, "resolv-spoof.conf");
      writeFileSync(resolvSpoof, `nameserver ${spoof.server}\noptions attempts:1 timeout:2\n`);
      // the trusted server answers attacker.moat.test CNAME allowed.moat.test, attacker.moat.test A
      const steps = pySteps(fresh("spoofed"), resolvSpoof, 80, [
        "L:attacker.moat.test",
        `C:${spoof.address}`,
      ]);
      assert.deepEqual(steps[1], { step: `C:${spoof.address}`, result: "EPERM" });
      // the answer bound: the refused connection carries the name that owns the address, only it
      await lab.daemon.waitFor(
        new RegExp(
          `BLOCKED egress tcp \\S+ -> ${ip("attacker.moat.test", spoof.address)}:80 .*by rule default \\(python3 pid \\d+\\)`,
        ),
      );
    },
  );

  await t.test(
    "TTL: once the answer's life is over, a new connection by IP is refused",
    async () => {
      const where = fresh("ttl");
      assert.equal(curl(where, resolv.stub, "http://allowed.moat.test/").status, 0);
      assert.equal(curlByIp(where, `http://${z.allowed}/`).status, 0, "within TTL 1 s + grace 1 s");
      // past TTL and grace, the 1 s sweep, and the connection by IP's own extension of the
      // binding until its tracked entry goes (a loaded machine's timers run late)
      await sleep(5000);
      assert.equal(curlByIp(where, `http://${z.allowed}/`).status, 7, "expired");
    },
  );

  await t.test("TTL: a live connection keeps its address bound for its program", async (s) => {
    const holder = await pyHold(fresh("ttl-live"), resolv.stub, "allowed.moat.test", 80);
    s.after(() => holder.close());
    assert.equal(holder.first.result, "connected");
    await sleep(4000);
    assert.equal((await holder.again()).result, "connected", "kept while the connection lives");
  });

  await t.test(
    "examples/workstation.yaml: curl reaches a listed name, not an unlisted one",
    async () => {
      await reloadPolicy(lab, workstation(lab, cg.cgroup));
      const where = fresh("workstation");
      const listed = curl(where, resolv.stub, "http://allowed.moat.test/");
      assert.equal(listed.status, 0, listed.stderr);
      await lab.daemon.waitFor(
        new RegExp(
          `ALLOWED egress tcp \\S+ -> ${ip("allowed.moat.test", z.allowed)}:80 .*by rule curl `,
        ),
      );
      const unlisted = curl(where, resolv.stub, "http://unlisted.moat.test/");
      assert.equal(unlisted.status, 7, unlisted.stderr);
      assert.equal(dig(where, STUB, "blocked.moat.test").rcode, "REFUSED", "a tracker's lookup");
    },
  );
});

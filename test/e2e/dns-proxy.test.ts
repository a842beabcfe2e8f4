// moat's DNS proxy with a real client (dig) and a real upstream (dnsmasq in a network namespace
// joined to this one by a veth pair). The kernel's redirect is stood in for: dig asks the proxy's
// port directly, and the proxy's lookup of the client's original server names the dnsmasq address
// the test chose. What a user sees: dig gets the upstream's answer; the kernel's bindings (a
// recording binder) have the asker's identity, the names of the CNAME chain, their class and
// expiry before dig has its answer; an untrusted server's answer binds nothing; an answer too big
// for UDP comes back truncated and dig gets it whole over TCP; a blocked name is REFUSED at once.
// With dns.ech strip an HTTPS answer loses its ech parameter; with dns.doh block the canary
// use-application-dns.net is NXDOMAIN.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { checkPolicySource, textOnlyHost } from "../../src/config/index.ts";
import type { MoatEvent } from "../../src/datapath/index.ts";
import {
  DnsProxy,
  NEVER,
  policyJudge,
  trustedResolvers,
  type DnsOwner,
  type NameBinding,
  type NameIdentity,
} from "../../src/dns/index.ts";
import { spawnLines } from "../helpers/child.ts";
import { daemonStandIns } from "../helpers/dns-proxy-stand-ins.ts";
import { labNamespace, sh, status, tagFor } from "../helpers/netns.ts";
import { sweepStale } from "../helpers/cgroup-run.ts";

const POLICY = `version: 1
mode: prevent
defaults: { ingress: allow, egress: allow }
rules:
  - name: no-ads
    direction: egress
    action: block
    layer7: { dns: { name: [ads.moat.test] } }
`;

/** The owner the kernel would have recorded for dig's socket. */
const DIG: DnsOwner = {
  pid: 4321,
  uid: 1000,
  cgroupId: 77n,
  comm: "dig",
  exeIno: 123456n,
  exeDev: 0x800001,
};
const DIG_IDENTITY: NameIdentity = { cgroupId: 77n, exeIno: 123456n, exeDev: 0x800001, uid: 1000 };

/** Class 5: names of the moat.test zone; class 2: big.moat.test; 0: anything else. */
const classesOf = (names: readonly string[]) =>
  names.includes("big.moat.test") ? 2 : names.some((n) => n.endsWith("moat.test")) ? 5 : 0;

interface Dig {
  stdout: string;
  status: number | null;
  ms: number;
  /** performance.now() when dig exited. */
  endedAt: number;
}

function dig(port: number, name: string, extra: string[] = []): Promise<Dig> {
  const started = performance.now();
  return new Promise((resolve) => {
    const child = spawn("dig", [
      `-p`,
      String(port),
      "@127.0.0.1",
      name,
      "A",
      "+tries=1",
      "+time=3",
      ...extra,
    ]);
    let stdout = "";
    child.stdout.on("data", (c: Buffer) => (stdout += c.toString()));
    child.stderr.on("data", (c: Buffer) => (stdout += c.toString()));
    // timed at its exit; read at "close", once its last output has come through the pipe
    let endedAt = 0;
    let status: number | null = null;
    child.on("exit", (code) => {
      endedAt = performance.now();
      status = code;
    });
    child.on("close", () => resolve({ stdout, status, ms: endedAt - started, endedAt }));
  });
}

const digStatus = (out: string) => /status: (\w+)/.exec(out)?.[1];
const answers = (out: string, name: string) =>
  [
    ...out.matchAll(
      new RegExp(`^${name.replace(/\./g, "\\.")}\\.\\s+\\d+\\s+IN\\s+A\\s+(\\S+)$`, "gm"),
    ),
  ].map((m) => m[1]);

test("moat's DNS proxy between dig and dnsmasq", async (t) => {
  sweepStale();
  const tag = tagFor(t.name);
  const octet = parseInt(tag.slice(0, 2), 16);
  const ns = labNamespace(tag, "u");
  const [hostIf, nsIf] = [`md${tag}h`, `md${tag}u`];
  const net = {
    host: `10.233.${octet}.1`,
    trusted: `10.233.${octet}.2`,
    untrusted: `10.233.${octet}.3`,
  };
  const dir = mkdtempSync(join(tmpdir(), "moat-dns-proxy-"));
  const cleanups: (() => void)[] = [
    () => rmSync(dir, { recursive: true, force: true }),
    () => status("ip", ["netns", "del", ns]),
  ];
  t.after(() => {
    for (const c of cleanups.reverse()) c();
  });
  sh("ip", ["netns", "add", ns]);
  sh("ip", ["link", "add", hostIf, "type", "veth", "peer", nsIf, "netns", ns]);
  sh("ip", ["addr", "add", `${net.host}/24`, "dev", hostIf]);
  sh("ip", ["link", "set", hostIf, "up"]);
  for (const ip of [net.trusted, net.untrusted])
    sh("ip", ["-n", ns, "addr", "add", `${ip}/24`, "dev", nsIf]);
  sh("ip", ["-n", ns, "link", "set", nsIf, "up"]);
  sh("ip", ["-n", ns, "link", "set", "lo", "up"]);

  // 100 addresses for one name: an answer of ~1.7 kB, over any UDP limit dig announces
  const bigHosts = join(dir, "big.hosts");
  writeFileSync(
    bigHosts,
    Array.from({ length: 100 }, (_, i) => `10.9.1.${i + 1} big.moat.test\n`).join(""),
  );
  const dnsmasq = spawnLines("ip", [
    "netns",
    "exec",
    ns,
    "dnsmasq",
    "--keep-in-foreground",
    "--no-resolv",
    "--no-hosts",
    "--bind-interfaces",
    `--listen-address=${net.trusted},${net.untrusted}`,
    "--port=53",
    "--local-ttl=120",
    "--edns-packet-max=4096",
    "--host-record=edge.moat.test,10.9.0.2",
    "--cname=www.moat.test,edge.moat.test",
    "--host-record=plain.moat.test,10.9.0.1",
    "--host-record=other.moat.test,10.9.0.3",
    // HTTPS: priority 1, target ".", alpn h2, ech (4 bytes)
    "--dns-rr=ech.moat.test,65,000100000100030268320005000411223344",
    `--addn-hosts=${bigHosts}`,
    `--pid-file=${join(dir, "dnsmasq.pid")}`,
    "--user=root",
  ]);
  cleanups.push(() => dnsmasq.kill());

  const checked = checkPolicySource(POLICY, "policy.yaml", textOnlyHost);
  assert.ok(checked.model, JSON.stringify(checked.diagnostics));
  const model = checked.model;

  let upstream = net.trusted;
  let mapFull = false;
  /** Added to the monotonic clock: lets a test move past the bindings' expiry. */
  let clockOffsetNs = 0n;
  const unbound: { identity: NameIdentity; ip: string }[] = [];
  let helper: "block" | "allow" = "block";
  const bound: { at: number; bindings: NameBinding[] }[] = [];
  const events: MoatEvent[] = [];
  const logs: string[] = [];
  const proxy = await DnsProxy.open({
    original: () => ({ original: { ip: upstream, port: 53 }, owner: DIG }),
    binder: {
      bindNames(bindings) {
        bound.push({ at: performance.now(), bindings });
        // the kernel write takes a while: the answer must wait for it
        const until = performance.now() + 300;
        while (performance.now() < until);
        if (mapFull) return { written: 0, full: bindings.length };
        return { written: bindings.length, full: 0 };
      },
      unbindNames: (keys) => unbound.push(...keys),
      monotonicNs: () => process.hrtime.bigint() + clockOffsetNs,
    },
    judge: policyJudge(() => model),
    ...daemonStandIns("/usr/bin/dig"),
    failureHelper: () => helper,
    report: (e) => events.push(e),
    log: (l) => logs.push(l),
    settings: {
      resolvers: [net.trusted],
      minTtlSeconds: 5,
      graceSeconds: 30,
      doh: "allow",
      ech: "keep",
    },
    trusted: trustedResolvers([net.trusted], join(dir, "no-resolv.conf")),
  });
  cleanups.push(() => proxy.close());
  proxy.setClasses(classesOf);
  const { udp, tcp } = proxy.addresses();
  assert.equal(udp.ip, "127.0.0.1");

  // dnsmasq takes a moment to listen
  for (let i = 0; i < 50; i++) {
    const r = await dig(udp.port, "plain.moat.test");
    if (answers(r.stdout, "plain.moat.test").length) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  bound.length = 0;
  events.length = 0;

  await t.test(
    "dig gets the answer, bound to its identity with the CNAME chain before it arrives",
    async () => {
      const before = process.hrtime.bigint();
      const r = await dig(udp.port, "www.moat.test");
      assert.equal(r.status, 0, r.stdout);
      assert.equal(digStatus(r.stdout), "NOERROR");
      assert.deepEqual(answers(r.stdout, "edge.moat.test"), ["10.9.0.2"]);
      assert.equal(bound.length, 1, logs.join("\n"));
      const [b] = bound[0]?.bindings ?? [];
      assert.deepEqual(b?.identity, DIG_IDENTITY);
      assert.equal(b?.ip, "10.9.0.2");
      assert.equal(b?.nclass, 5);
      // dnsmasq's TTL 120 s + 30 s grace, on the monotonic clock
      const life = Number(((b?.expiresNs ?? 0n) - before) / 1_000_000_000n);
      assert.ok(life >= 149 && life <= 151, `binding lives ${life} s`);
      assert.deepEqual(proxy.namesOf(DIG_IDENTITY, "10.9.0.2"), [
        "www.moat.test",
        "edge.moat.test",
      ]);
      assert.ok((bound[0]?.at ?? Infinity) < r.endedAt, "bound before dig had its answer");
      assert.match(r.stdout, /Query time: (\d+) msec/);
      const queryMs = Number(/Query time: (\d+) msec/.exec(r.stdout)?.[1]);
      // dig rounds its own clock's reading to a millisecond: a little under 300 is not the
      // answer overtaking the bind, a small fraction of it would be
      assert.ok(
        queryMs >= 280,
        `dig had its answer after ${queryMs} ms: before the 300 ms bind ended`,
      );
      const dns = events.find((e) => e.type === "dns");
      assert.deepEqual(dns?.dns, {
        query: "www.moat.test",
        qtype: "A",
        rcode: "NOERROR",
        answers: ["10.9.0.2"],
        trusted: true,
        names: ["www.moat.test", "edge.moat.test"],
      });
      assert.deepEqual(dns?.remote, { ip: net.trusted, port: 53 });
      assert.equal(dns?.process?.name, "dig");
    },
  );

  await t.test("an untrusted server's answer reaches dig but binds nothing", async () => {
    upstream = net.untrusted;
    bound.length = 0;
    events.length = 0;
    const r = await dig(udp.port, "other.moat.test");
    upstream = net.trusted;
    assert.deepEqual(answers(r.stdout, "other.moat.test"), ["10.9.0.3"]);
    assert.equal(bound.length, 0);
    assert.deepEqual(proxy.namesOf(DIG_IDENTITY, "10.9.0.3"), []);
    assert.equal(events.find((e) => e.type === "dns")?.dns?.trusted, false);
  });

  await t.test(
    "an answer too big for UDP comes truncated; dig retries over TCP and gets it all",
    async () => {
      bound.length = 0;
      const r = await dig(udp.port, "big.moat.test");
      assert.equal(r.status, 0, r.stdout);
      assert.match(r.stdout, /Truncated, retrying in TCP mode/);
      assert.equal(answers(r.stdout, "big.moat.test").length, 100);
      assert.match(r.stdout, /SERVER: 127\.0\.0\.1#\d+\(127\.0\.0\.1\) \(TCP\)/);
      assert.equal(bound.length, 1, "the TCP answer bound the addresses");
      assert.equal(bound[0]?.bindings.length, 100);
      assert.ok(bound[0]?.bindings.every((b) => b.nclass === 2));
    },
  );

  await t.test("without EDNS (512 bytes) the same holds", async () => {
    const r = await dig(udp.port, "big.moat.test", ["+noedns"]);
    assert.match(r.stdout, /Truncated, retrying in TCP mode/);
    assert.equal(answers(r.stdout, "big.moat.test").length, 100);
  });

  await t.test("several queries over one TCP connection are each answered", async () => {
    const r = await dig(tcp.port, "plain.moat.test", ["+tcp", "+keepopen", "www.moat.test", "A"]);
    assert.deepEqual(answers(r.stdout, "plain.moat.test"), ["10.9.0.1"]);
    assert.deepEqual(answers(r.stdout, "edge.moat.test"), ["10.9.0.2"]);
  });

  await t.test("a blocked name is REFUSED at once and reported with its rule", async () => {
    bound.length = 0;
    events.length = 0;
    const r = await dig(udp.port, "ads.moat.test");
    assert.equal(digStatus(r.stdout), "REFUSED", r.stdout);
    assert.equal(bound.length, 0);
    assert.deepEqual(
      events.map((e) => [e.type, e.verdict, e.rule, e.layer7]),
      [
        ["dns", "blocked", "no-ads", null],
        ["blocked", "blocked", "no-ads", { dns: { name: "ads.moat.test" } }],
      ],
    );
  });

  await t.test(
    "dns.ech strip: HTTPS answers lose ech; dns.doh block: the canary is NXDOMAIN",
    async () => {
      const https = (out: string) =>
        /^ech\.moat\.test\.\s+\d+\s+IN\s+HTTPS\s+(.*)$/m.exec(out)?.[1];
      const kept = await dig(udp.port, "ech.moat.test", ["ech.moat.test", "HTTPS"]);
      assert.match(https(kept.stdout) ?? "", /alpn="h2" ech=ESIzRA==/, kept.stdout);
      const canaryKept = await dig(udp.port, "use-application-dns.net");
      assert.notEqual(digStatus(canaryKept.stdout), "NXDOMAIN", "doh allow: the server's answer");
      const settings = { resolvers: [net.trusted], minTtlSeconds: 5, graceSeconds: 30 };
      const trusted = trustedResolvers([net.trusted], join(dir, "no-resolv.conf"));
      proxy.configure({ ...settings, doh: "block", ech: "strip" }, trusted);
      try {
        const stripped = await dig(udp.port, "ech.moat.test", ["ech.moat.test", "HTTPS"]);
        assert.equal(https(stripped.stdout), '1 . alpn="h2"', stripped.stdout);
        const canary = await dig(udp.port, "use-application-dns.net");
        assert.equal(digStatus(canary.stdout), "NXDOMAIN", canary.stdout);
      } finally {
        proxy.configure({ ...settings, doh: "allow", ech: "keep" }, trusted);
      }
    },
  );

  await t.test(
    "a full bindings map: SERVFAIL under failure.helper block, the answer under allow",
    async () => {
      // a name bound by no answer yet: a full map takes no new key (one already there is
      // updated in place); the refused binding is tried again with the next answer
      mapFull = true;
      const blocked = await dig(udp.port, "other.moat.test");
      helper = "allow";
      const allowed = await dig(udp.port, "other.moat.test");
      mapFull = false;
      helper = "block";
      assert.equal(digStatus(blocked.stdout), "SERVFAIL", blocked.stdout);
      assert.deepEqual(answers(allowed.stdout, "other.moat.test"), ["10.9.0.3"]);
      assert.equal(proxy.stats.bindFull, 2);
      assert.ok(logs.some((l) => /bindings map is full/.test(l)));
    },
  );

  await t.test(
    "/etc/hosts names bind for every identity; the sweep unbinds what expired",
    async () => {
      bound.length = 0;
      proxy.setShared(new Map([["hosts.moat.test", ["10.9.9.9"]]]));
      assert.deepEqual(bound[0]?.bindings, [
        {
          identity: { cgroupId: 0n, exeIno: 0n, exeDev: 0, uid: 0 },
          ip: "10.9.9.9",
          nclass: 5,
          expiresNs: NEVER,
        },
      ]);
      await dig(udp.port, "www.moat.test");
      assert.deepEqual(proxy.namesOf(DIG_IDENTITY, "10.9.0.2"), [
        "www.moat.test",
        "edge.moat.test",
      ]);
      clockOffsetNs = 151n * 1_000_000_000n; // past dnsmasq's 120 s TTL + 30 s grace
      proxy.sweep();
      clockOffsetNs = 0n;
      assert.ok(
        unbound.some((k) => k.ip === "10.9.0.2" && k.identity.exeIno === DIG_IDENTITY.exeIno),
        JSON.stringify(unbound, (_, v: unknown) => (typeof v === "bigint" ? String(v) : v)),
      );
      assert.ok(!unbound.some((k) => k.ip === "10.9.9.9"), "/etc/hosts names never expire");
      assert.deepEqual(proxy.namesOf(DIG_IDENTITY, "10.9.0.2"), []);
      assert.deepEqual(proxy.namesOf(DIG_IDENTITY, "10.9.9.9"), ["hosts.moat.test"]);
    },
  );

  await t.test("a server that refuses the query's datagram gives SERVFAIL at once", async () => {
    upstream = net.host; // nothing listens on port 53 there: ICMP port unreachable
    const logged = logs.length;
    const r = await dig(udp.port, "plain.moat.test", ["+time=8"]);
    upstream = net.trusted;
    assert.equal(digStatus(r.stdout), "SERVFAIL", r.stdout);
    // the refusal ended it, not the proxy's own upstream timeout
    assert.match(logs.slice(logged).join("\n"), /did not answer plain\.moat\.test: .*ECONNREFUSED/);
  });
});

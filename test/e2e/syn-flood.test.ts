// A SYN flood (hping3 for IPv4, trafgen for IPv6, spoofed sources) against a real server with an accept queue of 4, through
// moat. In prevent mode moat answers the port's SYNs with its own cookies while it is under
// attack: curl from the peer keeps getting answers, moat's cookie counters rise, and the kernel's
// SYN queue never fills (TcpExt SyncookiesSent and ListenOverflows stay 0 in the server's
// namespace; the kernel's own syncookies are on, so curl alone would prove nothing), with the
// guarded interface's ingress at XDP and at tc (where moat's egress lets each SYN-ACK out
// unjudged, opening no egress connection). The attack's start and end are one event each. In
// detect mode the same flood reaches the kernel, and the
// attack is reported as what prevent would have answered. A replay of DNS "replies" from port 53
// to a UDP service the policy allows is cut to the amplification limit. Each test names its
// guarded veth's hook (`ingress: auto` would choose tc on a veth).
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startMoatLab, type MoatLab } from "../helpers/moat-lab.ts";
import type { Lab } from "../helpers/netns.ts";
import { http } from "../helpers/api-client.ts";
import { storedEvents, until } from "../helpers/stored-events.ts";
import { NODE, ROOT } from "../helpers/paths.ts";
import { tcpExt } from "../helpers/netstat.ts";

const PORT = 8080;
const UDP_PORT = 5353;
const PASS_OBJECT = `${ROOT}build/bpf/test/addon_attach.bpf.o`;

function policy(
  lab: Lab & { auditPath: string },
  mode: "detect" | "prevent",
  ingress: "xdp" | "tc",
): string {
  return `version: 1
mode: ${mode}
defaults: { ingress: block, egress: allow }
attach: { interfaces: [{ name: ${lab.ifB}, ingress: ${ingress} }] }
logging: { audit: { path: ${lab.auditPath} } }
rules:
  - name: web
    direction: ingress
    action: allow
    layer4: { protocol: tcp, port: [${PORT}] }
  - name: udp-service
    direction: ingress
    action: allow
    layer4: { protocol: udp, port: [${UDP_PORT}] }
flood:
  syn: { ports: [${PORT}], rate: 50/s, burst: 3, hold: 2s }
  udp_amplification: { rate_limit: { rate: 10/s, burst: 10 } }
`;
}

/** The servers: port 8080 with an accept queue of 4. */
const SERVERS = [`tcp:${PORT}`, `udp:${UDP_PORT}`, "backlog:4"];

/**
 * A reflector's replay from namespace a: `count` 512-byte datagrams from UDP port 53 to the
 * echo service, as fast as they go; the echoes that came back (what moat let through).
 */
function udpReplay(lab: Lab, count: number): number {
  const script = `
const s = require("node:dgram").createSocket("udp4");
let got = 0;
s.on("message", () => got++);
s.bind(53, () => {
  const b = Buffer.alloc(512, 0x41);
  for (let i = 0; i < ${count}; i++) s.send(b, ${UDP_PORT}, "${lab.v4.b}");
  setTimeout(() => { console.log(got); s.close(); }, 1500);
});`;
  const r = spawnSync("ip", ["netns", "exec", lab.a, NODE, "-e", script], {
    encoding: "utf8",
    timeout: 20_000,
  });
  assert.equal(r.status, 0, r.stderr);
  return Number(r.stdout.trim());
}

/** moat's SYN flood counters from /metrics. */
async function floodCounters(lab: MoatLab): Promise<Record<string, number>> {
  const reply = await http({ socketPath: lab.apiSocket }, "GET", "/metrics");
  assert.equal(reply.status, 200, reply.body);
  const out: Record<string, number> = {};
  for (const m of reply.body.matchAll(/^moat_flood_syn_total\{counter="(\w+)"\} (\d+)$/gm))
    out[m[1] ?? ""] = Number(m[2]);
  return out;
}

/** hping3 from namespace a: SYNs to the port from random sources until stop(). */
function synFlood(lab: Lab) {
  const child = spawn(
    "ip",
    [
      "netns",
      "exec",
      lab.a,
      "hping3",
      "-q",
      "-S",
      "-p",
      String(PORT),
      "-i",
      "u100",
      "--rand-source",
      lab.v4.b,
    ],
    { stdio: "ignore" },
  );
  return {
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((r) => child.once("exit", r));
      child.kill("SIGKILL");
      await exited;
    },
  };
}

/** The MAC address of `dev` in namespace `ns`. */
function macOf(ns: string, dev: string): string {
  const r = spawnSync("ip", ["-n", ns, "-j", "link", "show", dev], { encoding: "utf8" });
  const mac = (JSON.parse(r.stdout) as { address?: string }[])[0]?.address;
  assert.ok(mac, `the MAC of ${dev}: ${r.stderr}`);
  return mac;
}

const bytes = (hex: string): string =>
  hex
    .match(/../g)!
    .map((b) => `0x${b}`)
    .join(", ");

/** An IPv6 address as 32 hex digits. */
function hex6(address: string): string {
  const [head = "", tail = ""] = address.split("::");
  const words = (w: string) => (w ? w.split(":") : []);
  const h = words(head);
  const t = words(tail);
  return [...h, ...Array<string>(8 - h.length - t.length).fill("0"), ...t]
    .map((w) => w.padStart(4, "0"))
    .join("");
}

/**
 * trafgen from namespace a: bare IPv6 SYNs to the port (no options, as many flood tools send),
 * each from a random source in 2001:db8::/32 and a random port, about 10,000 a second, until
 * stop(). hping3 has no IPv6.
 */
function synFlood6(lab: Lab) {
  const dir = mkdtempSync(join(tmpdir(), "moat-synflood6-"));
  const conf = join(dir, "syn6.trafgen");
  const eth = `${bytes(macOf(lab.b, lab.ifB).replaceAll(":", ""))}, ${bytes(macOf(lab.a, lab.ifA).replaceAll(":", ""))}, 0x86, 0xdd`;
  const ip6 = `0x60, 0, 0, 0, 0, 20, 6, 64, 0x20, 0x01, 0x0d, 0xb8, drnd(12), ${bytes(hex6(lab.v6.b))}`;
  const tcp = `drnd(2), c16(${PORT}), drnd(4), c32(0), 0x50, 0x02, c16(64240), csumtcp6(14, 54), c16(0)`;
  writeFileSync(conf, `{ ${eth}, ${ip6}, ${tcp} }\n`);
  // its own process group: trafgen's worker is a child of its own, and both must stop
  const child = spawn(
    "ip",
    ["netns", "exec", lab.a, "trafgen", "--dev", lab.ifA, "--conf", conf, "--gap", "100us"],
    { detached: true, stdio: "ignore" },
  );
  return {
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((r) => child.once("exit", r));
        process.kill(-child.pid!, "SIGKILL");
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * Once moat answers the flood with cookies (its cookie counter past `before`'s): five curls to
 * `url` that get their answer; then the flood goes on until moat has answered more than 100 of
 * it (a generator on a busy machine may not have sent that many by the time the curls end).
 */
async function curlThroughCookies(
  lab: MoatLab,
  url: string,
  before: Record<string, number>,
): Promise<void> {
  for (let i = 0; (await floodCounters(lab)).cookieSent === before.cookieSent; i++) {
    assert.ok(i < 100, "moat answers the flood with cookies within 10 s");
    await new Promise((r) => setTimeout(r, 100));
  }
  for (let i = 0; i < 5; i++) {
    const r = lab.curl(url);
    assert.equal(r.status, 0, `curl ${i} to ${url} during the flood`);
    assert.equal(r.body, `port ${PORT}\n`);
  }
  const sent = async () => ((await floodCounters(lab)).cookieSent ?? 0) - (before.cookieSent ?? 0);
  for (let i = 0; (await sent()) <= 100; i++) {
    assert.ok(i < 100, "moat answers more than 100 of the flood's SYNs within 10 s");
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** How far each counter of `now` has gone past `before` (the lab's tests before this one). */
function since(now: Record<string, number>, before: Record<string, number>) {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(now)) out[k] = v - (before[k] ?? 0);
  return out;
}

/**
 * After a flood: moat's cookies answered it and handed the curls to the listener, and the
 * kernel sent no cookie of its own and its queue never overflowed (in the lab's whole life).
 * Returns the counters' rise since `before`.
 */
async function answeredByMoat(
  lab: MoatLab,
  before: Record<string, number>,
): Promise<Record<string, number>> {
  const all = await floodCounters(lab);
  const c = since(all, before);
  assert.ok((c.cookieSent ?? 0) > 100, `cookies sent: ${c.cookieSent}`);
  assert.ok((c.assigned ?? 0) >= 5, `connections handed to the listener: ${c.assigned}`);
  assert.equal(all.assignFailed, 0);
  const kernel = tcpExt(lab.b);
  assert.equal(
    kernel.SyncookiesSent,
    0,
    `the kernel sent no cookie of its own: ${JSON.stringify(c)}`,
  );
  assert.equal(kernel.ListenOverflows, 0, "the listener's queue never overflowed");
  return c;
}

interface AttackEvent {
  time: string;
  type: string;
  reason: string;
  rule: string;
  attack?: { state: string; port: number | null; syns: number; over: number; answered: string };
}

/** The SYN flood events stored from time `from` (ms) on. */
const attackEvents = (lab: MoatLab, from: number) =>
  storedEvents<AttackEvent>(lab).filter(
    (e) => e.reason === "syn_flood" && Date.parse(e.time) >= from,
  );

/** The SYN-ACKs to spoofed sources leave (and are lost) as on a host with a default route. */
const defaultRoute = (lab: Lab) =>
  assert.equal(lab.inB("ip", ["route", "add", "default", "via", lab.v4.a]), 0);

/**
 * At tc ingress the SYN-ACK is an skb redirected out of the veth: the peer needs nothing. The
 * guarded side's transmit checksum offload is off, so a SYN-ACK made from curl's offloaded SYN
 * (CHECKSUM_PARTIAL) has its checksum finished in software: a wrong one would lose curl's
 * connections.
 */
const tcSide = (lab: Lab) => {
  defaultRoute(lab);
  assert.equal(lab.inB("ethtool", ["-K", lab.ifB, "tx", "off"]), 0, "tx checksum offload off");
};

/**
 * At tc: every cookie SYN-ACK (`c`, the counters' rise during the flood) passed moat's egress
 * program unjudged (counted), none became an egress connection (with egress allowed by default,
 * each would count one past `egressBefore`).
 */
async function syncookieEgress(
  lab: MoatLab,
  c: Record<string, number>,
  egressBefore: number,
): Promise<void> {
  assert.equal(c.cookieEgress, c.cookieSent, "each SYN-ACK let out by the egress program");
  const egress = (await egressConnections(lab)) - egressBefore;
  assert.ok(egress < 5, `egress connections: ${egress} for ${c.cookieSent} SYN-ACKs`);
}

/** The connections moat's default egress allowance counted. */
async function egressConnections(lab: MoatLab): Promise<number> {
  const reply = await http({ socketPath: lab.apiSocket }, "GET", "/metrics");
  const m = /^moat_rule_connections_total\{rule="defaults\.egress"\} (\d+)$/m.exec(reply.body);
  return Number(m?.[1] ?? 0);
}

/**
 * XDP_TX on a veth reaches the peer only when the peer runs NAPI (a real NIC just transmits): a
 * program that passes everything on the peer's side.
 */
const peerXdp = (lab: Lab) => {
  defaultRoute(lab);
  assert.equal(
    lab.inA("ip", ["link", "set", "dev", lab.ifA, "xdpdrv", "obj", PASS_OBJECT, "sec", "xdp"]),
    0,
    "an XDP program on the peer veth",
  );
};

/**
 * One lab (and daemon) for the tests of a describe(): `policy`, then `prepare` on the namespaces.
 * Each test judges what changed during it (counters past those before it, events since it began).
 */
function sharedLab(
  name: string,
  labPolicy: (lab: Lab & { auditPath: string }) => string,
  prepare: (lab: Lab) => void,
): () => MoatLab {
  let lab: MoatLab | undefined;
  before(async () => {
    lab = await startMoatLab(name, labPolicy, SERVERS);
    prepare(lab);
  });
  after(() => lab?.close());
  return () => {
    assert.ok(lab, "the lab started");
    return lab;
  };
}

describe("prevent at XDP", () => {
  const shared = sharedLab("syn-flood-prevent-xdp", (l) => policy(l, "prevent", "xdp"), peerXdp);

  test("prevent: curl keeps getting answers through moat's SYN cookies; the kernel's queue never fills", async () => {
    const lab = shared();
    const before = await floodCounters(lab);
    const from = Date.now();
    const flood = synFlood(lab);
    try {
      assert.match(lab.daemon.lines.join("\n"), /SYN flood defence: moat's SYN cookies/);
      await curlThroughCookies(lab, `http://${lab.v4.b}:${PORT}/`, before);
      await flood.stop();
      const c = await answeredByMoat(lab, before);
      assert.ok((c.synOver ?? 0) > 100, `SYNs over the rate: ${c.synOver}`);
      // one start, then one end once no SYN went over the rate for the hold time
      const events = await until("the attack's end", () => {
        const e = attackEvents(lab, from);
        return e.some((x) => x.attack?.state === "ended") ? e : undefined;
      });
      assert.deepEqual(
        events.map((e) => e.attack?.state),
        ["started", "ended"],
      );
      for (const e of events) {
        assert.equal(e.type, "blocked");
        assert.equal(e.rule, "flood");
        assert.equal(e.attack?.port, PORT);
        assert.equal(e.attack?.answered, "moat");
      }
      assert.ok((events[1]?.attack?.over ?? 0) > 100, "the end says how many SYNs were over");
      await lab.auditHas(/BLOCKED ingress tcp SYN flood on port 8080 started/);
    } finally {
      await flood.stop();
    }
  });

  test("prevent, IPv6: curl -6 keeps getting answers through moat's SYN cookies during a trafgen flood", async () => {
    const lab = shared();
    const before = await floodCounters(lab);
    const from = Date.now();
    const flood = synFlood6(lab);
    try {
      await curlThroughCookies(lab, `http://[${lab.v6.b}]:${PORT}/`, before);
      await flood.stop();
      await answeredByMoat(lab, before);
      const started = await until("the attack's start", () =>
        attackEvents(lab, from).find((e) => e.attack?.state === "started"),
      );
      assert.equal(started.attack?.answered, "moat");
    } finally {
      await flood.stop();
    }
  });

  test("a UDP amplification replay from port 53 is cut to the limit and reported once", async () => {
    const lab = shared();
    const before = await floodCounters(lab);
    const echoed = udpReplay(lab, 300);
    assert.ok(echoed >= 10, `the burst passes (${echoed} echoed)`);
    assert.ok(echoed < 100, `the rest is dropped (${echoed} of 300 echoed)`);
    const c = since(await floodCounters(lab), before);
    assert.ok((c.udpDropped ?? 0) >= 300 - echoed - 5, `dropped: ${c.udpDropped}`);
    const reports = await until("an amplification report", () => {
      const r = storedEvents<AttackEvent & { aggregated?: { packets: number } }>(lab).filter(
        (e) => e.reason === "udp_amplification",
      );
      return r.length ? r : undefined;
    });
    assert.equal(reports.length, 1, "aggregated: one report per source per 10 s");
    assert.equal(reports[0]?.type, "blocked");
    assert.equal(reports[0]?.rule, "flood");
    await lab.auditHas(/BLOCKED ingress udp .*:53 -> .* by rule flood \(UDP amplification/);
  });
});

describe("prevent at tc ingress", () => {
  const shared = sharedLab("syn-flood-prevent-tc", (l) => policy(l, "prevent", "tc"), tcSide);

  test("prevent, tc ingress: curl keeps getting answers through moat's SYN cookies; the kernel's queue never fills", async () => {
    const lab = shared();
    const before = await floodCounters(lab);
    const egressBefore = await egressConnections(lab);
    const flood = synFlood(lab);
    try {
      await curlThroughCookies(lab, `http://${lab.v4.b}:${PORT}/`, before);
      await flood.stop();
      await syncookieEgress(lab, await answeredByMoat(lab, before), egressBefore);
    } finally {
      await flood.stop();
    }
  });

  test("prevent, tc ingress, IPv6: curl -6 keeps getting answers through moat's SYN cookies", async () => {
    const lab = shared();
    const before = await floodCounters(lab);
    const egressBefore = await egressConnections(lab);
    const flood = synFlood6(lab);
    try {
      await curlThroughCookies(lab, `http://[${lab.v6.b}]:${PORT}/`, before);
      await flood.stop();
      await syncookieEgress(lab, await answeredByMoat(lab, before), egressBefore);
    } finally {
      await flood.stop();
    }
  });
});

test("detect: the flood reaches the kernel and is reported as what prevent would answer", async (t) => {
  const lab = await startMoatLab(t.name, (l) => policy(l, "detect", "xdp"), SERVERS);
  const flood = synFlood(lab);
  try {
    peerXdp(lab);
    const started = await until("the attack's start", () => {
      const e = attackEvents(lab, 0);
      return e.length ? e[0] : undefined;
    });
    await flood.stop();
    assert.equal(started.type, "detected");
    assert.equal(started.attack?.answered, "kernel");
    const c = await floodCounters(lab);
    assert.equal(c.cookieSent, 0, "detect answers nothing");
    assert.ok((c.cookieDetected ?? 0) > 0, "SYNs prevent would have answered");
    assert.ok(tcpExt(lab.b).SyncookiesSent! > 0, "the kernel answered the flood with its cookies");
  } finally {
    await flood.stop();
    await lab.close();
  }
});

// IDS signatures against a sender that shapes its TCP stream so the bytes copied differ from what
// the server's application reads, with the real daemon under ids.mode prevent: an urgent byte
// (MSG_OOB) inside the signature's bytes, a decoy segment with a bad checksum the receiver drops
// before the real one at the same place, and 9,000 UDP flows between two halves of the request.
// Each time the drop signature still fires and the download it asked for is cut (the client sees
// the reset). A request its receiver drops 11 times (a lossy receiving host) is read as it is:
// its repeats are not taken for bytes that went by unread.
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { startMoatLab, type MoatLab } from "../helpers/moat-lab.ts";
import type { Lab } from "../helpers/netns.ts";
import { http } from "../helpers/api-client.ts";
import { idsEvents } from "../helpers/stored-events.ts";
import type { MoatEvent } from "../../src/datapath/index.ts";
import { guardedInterface } from "../helpers/ingress-mode.ts";

const SIG = `'drop tcp any any -> any 80 (msg:"bulk download"; flow:to_server; content:"/stream/"; sid:3101;)'`;
/** A request for 2 GB: far more than goes by before a cut. */
const REQUEST = "GET /stream/2000000000 HTTP/1.0\\r\\n\\r\\n";

function policy(lab: Lab, sig = SIG): string {
  return `version: 1
mode: detect
defaults: { ingress: allow, egress: allow }
attach: { interfaces: [${guardedInterface(lab.ifB)}] }
ids:
  mode: prevent
  rules: [${sig}]
`;
}

/**
 * A client with the socket API: it reads the answer until a reset, its end, or 64 MB, at most
 * 64 KB each 5 ms (about 13 MB/s), so the cut has seconds to come on a busy machine.
 */
const READ = `
import time
def read(s):
    got = 0
    s.settimeout(20)
    try:
        while got < 64_000_000:
            x = s.recv(1 << 16)
            if not x:
                print("eof", got); return
            got += len(x)
            time.sleep(0.005)
        print("read", got)
    except ConnectionResetError:
        print("reset")
    except Exception as e:
        print("error", e)
`;

const URGENT = `
import socket, sys, time
${READ}
s = socket.create_connection((sys.argv[1], 80))
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
s.send(b"GET /str"); time.sleep(0.2)
s.send(b"X", socket.MSG_OOB); time.sleep(0.2)
s.send(b"eam/2000000000 HTTP/1.0\\r\\n\\r\\n")
read(s)
`;

const UDP_FLOOD = `
import socket, struct, sys, time
${READ}
s = socket.create_connection((sys.argv[1], 80))
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
s.send(b"GET /str"); time.sleep(0.5)
u = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_UDP)
for i in range(9000):
    u.sendto(struct.pack("!HHHH", 10000 + i, 40000, 9, 0) + b"x", (sys.argv[1], 0))
    if i % 500 == 0: time.sleep(0.05)
time.sleep(1)
s.send(b"eam/2000000000 HTTP/1.0\\r\\n\\r\\n")
read(s)
`;

/** A raw TCP client's connection, up to its request (sent by what follows it, RAW_READ after). */
const RAW_CONNECT = `
import random, select, socket, struct, sys, time
dst, src = sys.argv[1], sys.argv[2]
sport = random.randint(30000, 60000)
def csum(b):
    if len(b) % 2: b += b"\\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16: s = (s & 0xffff) + (s >> 16)
    return (~s) & 0xffff
def tcp(flags, seq, ack, payload=b"", bad=False):
    h = struct.pack("!HHIIBBHHH", sport, 80, seq, ack, 5 << 4, flags, 64240, 0, 0)
    ph = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, 6, len(h) + len(payload))
    c = csum(ph + h + payload) ^ (0x5555 if bad else 0)
    return h[:16] + struct.pack("!H", c) + h[18:] + payload
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
def segments(until):
    while time.time() < until:
        r, _, _ = select.select([s], [], [], 0.2)
        if not r: continue
        p = s.recv(65535)
        t = p[(p[0] & 15) * 4:]
        sp, dp, seq, ack, off, fl = struct.unpack("!HHIIBB", t[:14])
        if sp == 80 and dp == sport: yield seq, fl, t[(off >> 4) * 4:]
isn = random.randint(1, 2**31)
s.sendto(tcp(0x02, isn, 0), (dst, 0))
server = next((seq for seq, fl, _ in segments(time.time() + 3) if fl & 0x12 == 0x12), None)
if server is None: print("no SYN-ACK"); sys.exit(1)
s.sendto(tcp(0x10, isn + 1, server + 1), (dst, 0))
`;

/** The raw client reads the answer (acknowledging each segment) until a reset, its end, or 64 MB. */
const RAW_READ = `
got = 0
for seq, fl, data in segments(time.time() + 20):
    if fl & 0x04: print("reset"); sys.exit(0)
    got += len(data)
    if data: s.sendto(tcp(0x10, isn + 1 + len(request), seq + len(data)), (dst, 0))
    if got > 64_000_000 or fl & 0x01: break
print("read", got)
`;

/** The decoy (a bad checksum) first, then the request at the same place. */
const DECOY = `${RAW_CONNECT}
request = b"${REQUEST}"
s.sendto(tcp(0x18, isn + 1, server + 1, b"GET /xxxxxx/2000000000 HTTP/1.0\\r\\n\\r\\n", bad=True), (dst, 0))
time.sleep(0.2)
s.sendto(tcp(0x18, isn + 1, server + 1, request), (dst, 0))
${RAW_READ}`;

/** The request (argv 3) sent 12 times, as its sender retransmits it to a receiver that drops it. */
const REPEATED = `${RAW_CONNECT}
request = sys.argv[3].encode()
for _ in range(12):
    s.sendto(tcp(0x18, isn + 1, server + 1, request), (dst, 0))
    time.sleep(0.05)
${RAW_READ}`;

function client(lab: Lab, script: string, args: string[]): string {
  const r = spawnSync("ip", ["netns", "exec", lab.a, "python3", "-c", script, ...args], {
    encoding: "utf8",
    timeout: 90_000,
  });
  return `${r.stdout.trim()}${r.stderr.trim() ? ` (stderr: ${r.stderr.trim()})` : ""}`;
}

const seen = (events: MoatEvent[]) =>
  events.map((e) => `${e.type} ${e.rule} ${e.ids?.flow} cut:${e.ids?.cut}`).sort();

/**
 * One lab (and daemon) for every test: each start costs a program load. A test that changes the
 * namespaces (checksums, firewall rules) puts them back when it ends; the last one reloads the
 * policy with its own signature.
 */
let shared: Promise<MoatLab> | undefined;
after(async () => {
  await (await shared?.catch(() => undefined))?.close();
});
const labOf = () => (shared ??= startMoatLab("ids-stream", policy));

/**
 * The stored IDS events of what `run` does (those stored before it are not), once `enough` of
 * them are (or 5 s, as idsEvents waits); resolves with `run`'s result too.
 */
async function idsEventsOf<T>(
  lab: MoatLab,
  enough: number,
  run: () => T,
): Promise<{ result: T; events: MoatEvent[] }> {
  const key = (e: MoatEvent) => JSON.stringify(e);
  const before = new Set((await idsEvents(lab, 0)).map(key));
  const result = run();
  const events = (await idsEvents(lab, before.size + enough)).filter((e) => !before.has(key(e)));
  return { result, events };
}

/** Runs `rules` (iptables arguments, -A ...) in their namespaces until `body` ends. */
async function withIptables(rules: [string, string[]][], body: () => Promise<void>) {
  const added: [string, string[]][] = [];
  try {
    for (const [ns, rule] of rules) {
      const r = spawnSync("ip", ["netns", "exec", ns, "iptables", ...rule], { encoding: "utf8" });
      assert.equal(r.status, 0, r.stderr);
      added.push([ns, ["-D", ...rule.slice(1)]]);
    }
    await body();
  } finally {
    for (const [ns, rule] of added) spawnSync("ip", ["netns", "exec", ns, "iptables", ...rule]);
  }
}

test("ids prevent: a decoy segment the receiver drops (bad checksum) before the real one is seen through, and cut", async () => {
  // first on the lab: the copies counter below counts this test's overlap alone
  const lab = await labOf();
  const ethtool = (rx: "on" | "off") =>
    spawnSync("ip", ["netns", "exec", lab.b, "ethtool", "-K", lab.ifB, "rx", rx]);
  try {
    // the server's kernel checks TCP checksums itself, and drops the decoy
    const off = ethtool("off");
    assert.equal(off.status, 0, off.stderr?.toString());
    // the raw client has no socket: its kernel must not reset the server's SYN-ACK
    const rst = ["-A", "OUTPUT", "-p", "tcp", "--tcp-flags", "RST", "RST", "-j", "DROP"];
    await withIptables([[lab.a, rst]], async () => {
      const { result: out, events } = await idsEventsOf(lab, 2, () =>
        client(lab, DECOY, [lab.v4.b, lab.v4.a]),
      );
      assert.equal(out, "reset", `the download is cut: ${JSON.stringify(events)}`);
      assert.deepEqual(seen(events), [
        "blocked ids:3101 to_server cut:true",
        "blocked ids:stream to_server cut:true",
      ]);
      const overlap = events.find((e) => e.rule === "ids:stream");
      assert.match(overlap?.ids?.msg ?? "", /another version of bytes already copied/);
      const metrics = (await http({ socketPath: lab.apiSocket }, "GET", "/metrics")).body;
      assert.match(metrics, /moat_ids_copies_total\{outcome="overlap"\} 1/);
    });
  } finally {
    ethtool("on");
  }
});

test("ids prevent: a request with an urgent byte inside the signature's bytes is cut", async () => {
  const lab = await labOf();
  const { result: out, events } = await idsEventsOf(lab, 1, () => client(lab, URGENT, [lab.v4.b]));
  assert.equal(out, "reset", `the download is cut: ${JSON.stringify(events)}`);
  assert.deepEqual(seen(events), ["blocked ids:3101 to_server cut:true"]);
});

test("ids prevent: 9,000 UDP flows between two halves of a request do not let it through", async () => {
  const lab = await labOf();
  const { result: out, events } = await idsEventsOf(lab, 1, () =>
    client(lab, UDP_FLOOD, [lab.v4.b]),
  );
  assert.equal(out, "reset", `the download is cut: ${JSON.stringify(events)}`);
  assert.deepEqual(seen(events), ["blocked ids:3101 to_server cut:true"]);
});

/**
 * While `body` runs: a raw client in namespace a whose request the server's host drops 11 times
 * after moat read it (its 12th copy goes in; the rules are new, so is their packet count): the
 * client kernel must not reset the server's SYN-ACK.
 */
function lossyReceiver(lab: Lab, body: () => Promise<void>): Promise<void> {
  const data = ["-p", "tcp", "--dport", "80", "-m", "length", "--length", "41:65535"];
  const nth = ["-m", "statistic", "--mode", "nth", "--every", "12", "--packet", "11"];
  return withIptables(
    [
      [lab.b, ["-A", "INPUT", ...data, ...nth, "-j", "ACCEPT"]],
      [lab.b, ["-A", "INPUT", ...data, "-j", "DROP"]],
      [lab.a, ["-A", "OUTPUT", "-p", "tcp", "--tcp-flags", "RST", "RST", "-j", "DROP"]],
    ],
    body,
  );
}

test("ids prevent: a request retransmitted 12 times to a receiver that drops it is matched, and cut", async () => {
  const lab = await labOf();
  await lossyReceiver(lab, async () => {
    const request = "GET /stream/2000000000 HTTP/1.0\r\n\r\n";
    const { result: out, events } = await idsEventsOf(lab, 1, () =>
      client(lab, REPEATED, [lab.v4.b, lab.v4.a, request]),
    );
    assert.equal(out, "reset", `the download is cut: ${JSON.stringify(events)}`);
    assert.deepEqual(seen(events), ["blocked ids:3101 to_server cut:true"]);
  });
});

test("ids prevent: a request retransmitted 12 times to a receiver that drops it is read, not lost: no signature matches, nothing is cut", async () => {
  const admin = `'drop tcp any any -> any 80 (msg:"admin"; flow:to_server; content:"/admin"; sid:3102;)'`;
  const lab = await labOf();
  // last on the lab: its policy has this signature alone
  const generation = Math.max(
    ...lab.daemon.lines.map((l) => Number(/ applied: generation (\d+)/.exec(l)?.[1] ?? 0)),
  );
  lab.writePolicy(policy(lab, admin));
  await lab.daemon.waitFor(new RegExp(` applied: generation ${generation + 1},`));
  await lossyReceiver(lab, async () => {
    const request = "GET /stream/300000 HTTP/1.0\r\n\r\n";
    const { result: out, events } = await idsEventsOf(lab, 1, () =>
      client(lab, REPEATED, [lab.v4.b, lab.v4.a, request]),
    );
    assert.match(out, /^read \d+$/, `the download is not cut: ${JSON.stringify(events)}`);
    assert.ok(Number(out.split(" ")[1]) > 300_000, out);
    assert.deepEqual(seen(events), []);
  });
});

// Flow records: each connection's bytes counted once whether it closes, lives on or expires;
// records added up per window and key; a flood of keys costs bounded summaries.
import { test } from "node:test";
import assert from "node:assert/strict";
import { FlowAggregator } from "../../src/observe/flows/aggregate.ts";
import { FlowLedger, type LiveConnection } from "../../src/observe/flows/ledger.ts";
import type { FlowConnection, FlowRecord } from "../../src/observe/flows/record.ts";
import { flowEvent } from "../../src/observe/flows/record.ts";
import { conntrackExpired } from "../../src/datapath/conntrack.ts";
import { fakeEvent } from "../helpers/events.ts";

const curl = {
  pid: 812,
  name: "curl",
  path: "/usr/bin/curl",
  user: 1000,
  cgroup: "/user.slice",
  container: null,
};

function conn(over: Partial<FlowConnection> = {}): FlowConnection {
  const e = fakeEvent({
    type: "allowed",
    verdict: "allowed",
    direction: "egress",
    rule: "web",
    local: { ip: "10.0.0.1", port: 40000 },
    remote: { ip: "93.184.216.34", port: 443, names: ["example.com"] },
    process: curl,
  });
  return { ...e, ...over };
}

function live(id: string, packets: number, bytes: number, over: Partial<LiveConnection> = {}) {
  return {
    id,
    closeSent: false,
    expired: false,
    packets,
    bytes,
    durationMs: 1000,
    connection: () => conn(),
    ...over,
  };
}

const closeEvent = (id: string, packets: number, bytes: number, type: "closed" | "flow" = "flow") =>
  fakeEvent({
    ...conn(),
    type,
    reason: "fin",
    connection: id,
    stats: { packets, bytes, durationMs: 2500 },
  });

test("a connection's bytes are counted once: scans report the growth, the close the rest", () => {
  const records: FlowRecord[] = [];
  const ledger = new FlowLedger((r) => records.push(r));
  ledger.scan([live("a1", 10, 1000)], 1000);
  ledger.scan([live("a1", 10, 1000)], 2000); // nothing new: no record
  ledger.scan([live("a1", 30, 5000)], 3000);
  ledger.closed(closeEvent("a1", 35, 6000));
  assert.deepEqual(
    records.map((r) => [r.bytes, r.packets, r.first, r.end]),
    [
      [1000, 10, true, "open"],
      [4000, 20, false, "open"],
      [1000, 5, false, "fin"],
    ],
  );
  assert.equal(ledger.open, 0);
  // the entry lingers with its close sent: no more records
  ledger.scan([live("a1", 35, 6000, { closeSent: true })], 4000);
  assert.equal(records.length, 3);
});

test("a close no scan saw is the connection's only record; expiry and eviction end the others", () => {
  const records: FlowRecord[] = [];
  const ledger = new FlowLedger((r) => records.push(r));
  ledger.closed(closeEvent("b1", 4, 300));
  ledger.scan([live("u1", 2, 200), live("u2", 1, 100)], 1000);
  // u1 idles past its timeout; u2 leaves the table (lru eviction)
  ledger.scan([live("u1", 2, 200, { expired: true })], 2000);
  ledger.scan([live("u1", 2, 200, { expired: true })], 3000); // still there: not again
  assert.deepEqual(
    records.map((r) => [r.bytes, r.first, r.end]),
    [
      [300, true, "fin"],
      [200, true, "open"],
      [100, true, "open"],
      [0, false, "expired"],
      [0, false, "evicted"],
    ],
  );
});

test("records add up per key and window: connections, closes, bytes, durations, verdicts apart", () => {
  const agg = new FlowAggregator();
  const at = (timeMs: number, o: Partial<FlowRecord>): FlowRecord => ({
    timeMs,
    connection: conn(),
    packets: 2,
    bytes: 100,
    durationMs: 1000,
    first: true,
    end: "fin",
    ...o,
  });
  for (let i = 0; i < 50; i++) agg.add(at(1000 + i, { durationMs: i * 10 }));
  agg.add(at(2000, { first: false, end: "open", bytes: 7 }));
  agg.add(at(2001, { connection: conn({ verdict: "blocked", rule: "default" }), bytes: 0 }));
  const out = agg.flush();
  assert.equal(out.length, 2);
  const allowed = out.find((s) => s.connection.verdict === "allowed")!;
  assert.deepEqual(
    {
      connections: allowed.connections,
      closed: allowed.closed,
      bytes: allowed.bytes,
      max: allowed.durationMsMax,
      first: allowed.firstMs,
      last: allowed.lastMs,
    },
    { connections: 50, closed: 50, bytes: 5007, max: 490, first: 1000, last: 2000 },
  );
  assert.deepEqual(agg.counters.allowed, { records: 51, bytes: 5007 });
  assert.deepEqual(agg.counters.blocked, { records: 1, bytes: 0 });
  assert.equal(agg.flush().length, 0, "the next window starts empty");

  // an allowed summary is a "flow" event whose verdict stays allowed; the client port is 0
  const ev = flowEvent(allowed);
  assert.equal(ev.type, "flow");
  assert.equal(ev.verdict, "allowed");
  assert.equal(ev.local.port, 0);
  assert.equal(ev.remote.port, 443);
  assert.equal(ev.flow?.connections, 50);
});

test("a flood of distinct peers costs at most maxKeys summaries, plus one overflow a verdict", () => {
  const agg = new FlowAggregator({ maxKeys: 100 });
  for (let i = 0; i < 10_000; i++)
    agg.add({
      timeMs: i,
      connection: conn({ remote: { ip: `10.${i >> 16}.${(i >> 8) & 255}.${i & 255}`, port: 80 } }),
      packets: 1,
      bytes: 60,
      durationMs: 0,
      first: true,
      end: "rst",
    });
  const out = agg.flush();
  assert.equal(out.length, 101);
  assert.equal(agg.overflowed, 9_900);
  const other = out.find((s) => s.connection.remote.ip === "*")!;
  assert.equal(other.connections, 9_900);
  assert.equal(
    out.reduce((n, s) => n + s.bytes, 0),
    600_000,
  );
});

test("every key field apart makes a summary; equal fields in other objects are one; a full window still adds to its keys", () => {
  const agg = new FlowAggregator({ maxKeys: 11 });
  const record = (connection: FlowConnection, timeMs = 1): FlowRecord => ({
    timeMs,
    connection,
    packets: 1,
    bytes: 10,
    durationMs: 0,
    first: true,
    end: "fin",
  });
  const apart: Partial<FlowConnection>[] = [
    {},
    { process: { ...curl, path: "/usr/bin/wget" } },
    { process: { ...curl, user: 0 } },
    { process: { ...curl, cgroup: "/system.slice" } },
    { process: { ...curl, container: { id: "c1", name: "web", image: "nginx" } } },
    { remote: { ip: "93.184.216.34", port: 443, names: ["example.org"] } },
    { local: { ip: "10.0.0.9", port: 40000 } },
    { remote: { ip: "93.184.216.34", port: 8443, names: ["example.com"] } },
    { protocol: "udp" },
    { verdict: "blocked" },
    { rule: "other" },
  ];
  for (const over of apart) agg.add(record(conn(over)));
  // the window is full: the same fields again (new objects, another process object, another
  // client port) add to their summaries; a new key goes to the overflow
  agg.add(record(conn({ process: { ...curl }, local: { ip: "10.0.0.1", port: 40001 } }), 2));
  agg.add(record(conn({ rule: "other" }), 3));
  agg.add(record(conn({ mode: "detect" }), 4));
  const out = agg.flush();
  assert.equal(out.length, 12);
  assert.deepEqual(
    out.map((s) => s.connections),
    [2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 1],
    "summaries in the order they were made, the overflow last",
  );
  assert.equal(out[11]?.connection.remote.ip, "*");
  assert.equal(agg.overflowed, 1);
  // the next window starts empty and takes new keys again
  agg.add(record(conn({ mode: "detect" }), 5));
  assert.equal(agg.flush()[0]?.connection.remote.ip, "93.184.216.34");
});

test("an entry expires after its state's idle timeout, as the kernel's table decides", () => {
  const s = 1e9;
  const udp = { protocol: 17, tcpState: "none", flags: 0, lastNs: 100 * s } as const;
  assert.equal(conntrackExpired(udp, 159 * s), false);
  assert.equal(conntrackExpired(udp, 161 * s), true);
  const tcp = { protocol: 6, tcpState: "established", flags: 0, lastNs: 0 } as const;
  assert.equal(conntrackExpired(tcp, 86_400 * s), false, "an idle tcp connection lives 5 days");
  assert.equal(conntrackExpired({ ...tcp, tcpState: "closed" }, 11 * s), true);
  assert.equal(conntrackExpired({ ...tcp, tcpState: "synSent" }, 121 * s), true);
});

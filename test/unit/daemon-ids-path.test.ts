// The daemon's ids path on hand-made kernel copies: a flow direction's copies are put back in
// place and matched as one stream, a signature fires once per connection, detect reports without
// cutting, prevent cuts drop signatures only, and a policy without signatures reports nothing.
// What keeps the stream from being read as its receiver reads it (another version of bytes
// already copied, more than one urgent byte, bytes that went by uncopied) is counted, reported,
// and cut under prevent where a drop signature applies. Flows are held while their connection may
// still send what is read, TCP and UDP apart.
import { mock, test } from "node:test";
import assert from "node:assert/strict";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import {
  ct as ctCodec,
  idsRecord,
  IdsConst,
  EventType,
  Hook,
  TcpState,
} from "../../src/datapath/abi.ts";
import { mappedAddress } from "../../src/datapath/address.ts";
import { conntrackKey } from "../../src/datapath/ids-cut.ts";
import type { IdsCopy, MoatEvent } from "../../src/datapath/index.ts";
import { parsePolicy, type PolicyModel } from "../../src/config/index.ts";
import { textOnlyHost } from "../../src/config/parse.ts";
import { IDS_HELD, startIdsPath } from "../../src/daemon/ids-path.ts";

/** Each connection its own remote port: the connection table finds it by its addresses. */
const portOf = (connId: bigint) => 20000 + Number(connId % 40000n);

interface RecordOptions {
  /** The direction's first copy (default: a copy at offset 0). */
  first?: boolean;
  lost?: boolean;
  /** The place of the byte an urgent pointer names. */
  urgent?: number;
  protocol?: "tcp" | "udp";
}

function record(
  connId: bigint,
  toServer: boolean,
  offset: number,
  text: string,
  options: RecordOptions = {},
): Buffer {
  const data = Buffer.from(text, "latin1");
  const flags =
    ((options.first ?? offset === 0) ? IdsConst.first : 0) |
    (options.lost ? IdsConst.lost : 0) |
    (options.urgent !== undefined ? IdsConst.urgent : 0);
  const whole = idsRecord.encode({
    ts_ns: 1_000_000n,
    conn_id: connId,
    local: mappedAddress("10.0.0.1"),
    remote: mappedAddress("192.0.2.7"),
    local_port: 80,
    remote_port: portOf(connId),
    rule: 0,
    generation: 1,
    ifindex: 2,
    offset,
    len: data.length,
    family: 4,
    protocol: options.protocol === "udp" ? 17 : 6,
    direction: 0,
    to_server: toServer ? 1 : 0,
    hook: Hook.xdpIngress,
    verdict: EventType.allowed,
    urgent: options.urgent !== undefined ? options.urgent + 1 : 0,
    flags,
  });
  data.copy(whole, IdsConst.header);
  return whole.subarray(0, IdsConst.header + data.length);
}

/** A connection table with the connections the test puts in it (CLOCK_MONOTONIC: the lab's). */
class Table {
  private readonly rows = new Map<string, Buffer>();
  put(
    connId: bigint,
    state: { createdMs?: number; lastMs?: number; closed?: boolean; protocol?: "tcp" | "udp" },
  ): void {
    const protocol = state.protocol ?? "tcp";
    const key = conntrackKey({
      local: { ip: "10.0.0.1", port: 80 },
      remote: { ip: "192.0.2.7", port: portOf(connId) },
      family: 4,
      protocol,
    });
    const value = ctCodec.encode({
      id: connId,
      created_ns: BigInt(state.createdMs ?? 0) * 1_000_000n,
      last_ns: BigInt(state.lastMs ?? state.createdMs ?? 0) * 1_000_000n,
      tcp_state: protocol === "udp" ? 0 : state.closed ? TcpState.closed : TcpState.established,
    });
    this.rows.set(key.toString("hex"), value);
  }
  lookup(key: Buffer | null): Buffer | null {
    return key ? (this.rows.get(key.toString("hex")) ?? null) : null;
  }
}

const policyWith = (idsSection: string): PolicyModel =>
  parsePolicy(`version: 1\nmode: detect\n${idsSection}`, "p.yaml", textOnlyHost);

/** The path started at `startMs` of the lab's clock (CLOCK_MONOTONIC: its ms). */
function lab(idsSection: string, table?: Table, startMs = 0) {
  let model = policyWith(idsSection);
  const events: MoatEvent[] = [];
  const cuts: IdsCopy[] = [];
  let deliver: (r: Buffer) => void = () => {};
  let clock = startMs;
  const path = startIdsPath({
    source: {
      subscribeIds: (on) => (deliver = on),
      ...(table ? { conntrackMap: table } : {}),
    },
    model: () => model,
    push: (e) => events.push(e),
    process: () => {
      throw new Error("no owner in these copies");
    },
    cut: (copy) => {
      cuts.push(copy);
      return true;
    },
    bootTimeMs: 0,
    now: () => clock,
    monotonicNs: () => BigInt(clock) * 1_000_000n,
  });
  const reload = (next: string) => {
    model = policyWith(next);
    path.applied();
  };
  const advance = (ms: number) => (clock += ms);
  return {
    send: (r: Buffer) => deliver(r),
    events,
    cuts,
    path,
    reload,
    advance,
    model: () => model,
    /** [type, rule, connection, cut] of each event. */
    seen: () => events.map((e) => [e.type, e.rule, e.connection, e.ids?.cut]),
  };
}

const RULES = `ids:
  mode: prevent
  rules:
    - 'drop tcp any any -> any 80 (msg:"admin"; flow:to_server; content:"GET /admin"; sid:1;)'
    - 'alert tcp any 80 -> any any (msg:"not found"; flow:to_client; content:"404"; sid:2;)'
`;

test("copies in order make one stream: a content split across two copies matches once", () => {
  const l = lab(RULES);
  l.send(record(7n, true, 0, "GET /ad"));
  assert.equal(l.events.length, 0);
  l.send(record(7n, true, 7, "min HTTP/1.1\r\n"));
  l.send(record(7n, true, 21, "GET /admin again"));
  assert.equal(l.events.length, 1, "once per connection");
  const e = l.events[0]!;
  assert.equal(e.type, "blocked");
  assert.equal(e.mode, "prevent");
  assert.equal(e.rule, "ids:1");
  assert.equal(e.reason, "ids");
  assert.equal(e.connection, "7");
  assert.deepEqual(e.remote, { ip: "192.0.2.7", port: portOf(7n) });
  assert.deepEqual(e.ids, {
    sid: 1,
    msg: "admin",
    action: "drop",
    flow: "to_server",
    source: "p.yaml:6:8",
    cut: true,
  });
  assert.equal(l.cuts.length, 1);
  // an alert signature on the reply: reported, not cut
  l.send(record(7n, false, 0, "HTTP/1.1 404 Not Found"));
  assert.deepEqual(
    l.events.map((x) => [x.type, x.rule, x.ids?.flow]),
    [
      ["blocked", "ids:1", "to_server"],
      ["detected", "ids:2", "to_client"],
    ],
  );
  assert.equal(l.cuts.length, 1);
  assert.deepEqual(l.path.counters(), {
    copies: 4,
    gaps: 0,
    overlaps: 0,
    urgent: 0,
    detected: 1,
    blocked: 1,
  });
});

test("a copy lost on the way ends that direction's matching: reported, cut under prevent where a drop signature applies", () => {
  const l = lab(RULES);
  l.send(record(9n, true, 0, "GET /ad"));
  l.send(record(9n, true, 7, "", { lost: true })); // the copy at 7 did not fit in the ring
  l.send(record(9n, true, 7, "min HTTP/1.1\r\n"));
  assert.deepEqual(l.seen(), [["blocked", "ids:stream", "9", true]]);
  const e = l.events[0]!;
  assert.deepEqual(e.ids, {
    sid: 0,
    msg: "stream: bytes went by unread (a copy lost, or the flow let go while open)",
    action: "drop",
    flow: "to_server",
    source: "p.yaml:6:8",
    cut: true,
  });
  assert.equal(l.path.counters().gaps, 1);
  // the reply has only an alert signature: reported, not cut
  l.send(record(9n, false, 0, "", { lost: true }));
  assert.deepEqual(l.seen()[1], ["detected", "ids:stream", "9", undefined]);
  assert.equal(l.events[1]?.ids?.action, "alert");
  assert.equal(l.cuts.length, 1);
});

test("detect never cuts: a lost copy is reported as what prevent would cut", () => {
  const l = lab(RULES.replace("mode: prevent", "mode: detect"));
  l.send(record(10n, true, 0, "GET /ad"));
  l.send(record(10n, true, 7, "", { lost: true }));
  l.send(record(11n, true, 0, "GET /admin"));
  assert.deepEqual(l.seen(), [
    ["detected", "ids:stream", "a", undefined],
    ["detected", "ids:1", "b", undefined],
  ]);
  assert.equal(l.cuts.length, 0);
});

test("another version of bytes already copied: matched too, reported as an overlap, cut under prevent", () => {
  const l = lab(RULES);
  l.send(record(12n, true, 0, "GET /xxxxx HTTP/1.1\r\n")); // a decoy its receiver dropped
  l.send(record(12n, true, 0, "GET /xxxxx HTTP/1.1\r\n")); // retransmitted: the same bytes
  assert.deepEqual(l.seen(), []);
  l.send(record(12n, true, 0, "GET /admin HTTP/1.1\r\n"));
  assert.deepEqual(
    new Set(l.seen().map((e) => JSON.stringify(e))),
    new Set([
      JSON.stringify(["blocked", "ids:stream", "c", true]),
      JSON.stringify(["blocked", "ids:1", "c", true]),
    ]),
  );
  assert.match(
    l.events.find((e) => e.rule === "ids:stream")?.ids?.msg ?? "",
    /^stream: another version/,
  );
  assert.equal(l.path.counters().overlaps, 1);

  // the real one first, the decoy after: the first version matched already
  const d = lab(RULES.replace("mode: prevent", "mode: detect"));
  d.send(record(13n, true, 0, "GET /admin HTTP/1.1\r\n"));
  d.send(record(13n, true, 4, "/xxxxx"));
  assert.deepEqual(d.seen(), [
    ["detected", "ids:1", "d", undefined],
    ["detected", "ids:stream", "d", undefined],
  ]);
  assert.equal(d.cuts.length, 0);
});

test("a segment ahead of the stream waits for the bytes before it", () => {
  const l = lab(RULES);
  l.send(record(14n, true, 7, "min HTTP/1.1\r\n", { first: true }));
  assert.deepEqual(l.seen(), []);
  l.send(record(14n, true, 0, "GET /ad", { first: false }));
  assert.deepEqual(l.seen(), [["blocked", "ids:1", "e", true]]);
  assert.equal(l.path.counters().overlaps, 0);
});

test("an urgent byte: matched with it and without it; more than one is reported and cut", () => {
  const l = lab(RULES);
  l.send(record(15n, true, 0, "GET /adm"));
  l.send(record(15n, true, 8, "X", { urgent: 8 }));
  l.send(record(15n, true, 9, "in HTTP/1.0\r\n"));
  assert.deepEqual(l.seen(), [["blocked", "ids:1", "f", true]]);

  // inline (SO_OOBINLINE), the byte is read: "GET /admin" with an urgent byte after it
  const inline = lab(RULES);
  inline.send(record(16n, true, 0, "GET /admin"));
  inline.send(record(16n, true, 10, "!", { urgent: 10 }));
  assert.deepEqual(inline.seen(), [["blocked", "ids:1", "10", true]]);

  const two = lab(RULES);
  two.send(record(17n, true, 0, "GET /a", { urgent: 1 }));
  two.send(record(17n, true, 6, "dmin", { urgent: 9 }));
  assert.deepEqual(two.seen()[0], ["blocked", "ids:stream", "11", true]);
  assert.match(two.events[0]?.ids?.msg ?? "", /^stream: more than one urgent byte/);
  assert.equal(two.path.counters().urgent, 1);
});

test("a copy of a flow whose start this path did not hold: lost, unless the flow is older than the reading", () => {
  const table = new Table();
  const l = lab(RULES, table, 1000);
  table.put(18n, { createdMs: 500 }); // before the path began reading (a daemon's restart)
  table.put(19n, { createdMs: 1000 });
  l.send(record(18n, true, 7, "min HTTP/1.1\r\n"));
  l.send(record(19n, true, 7, "min HTTP/1.1\r\n"));
  assert.deepEqual(l.seen(), [["blocked", "ids:stream", "13", true]]);
  assert.equal(l.path.counters().gaps, 2);
});

test("a TCP flow is held while its connection is open, past 30 s without a copy", () => {
  mock.timers.enable({ apis: ["setInterval"] });
  try {
    for (const table of [undefined, new Table()]) {
      const l = lab(RULES, table);
      table?.put(20n, {});
      l.send(record(20n, true, 0, "GET /ad"));
      l.advance(31_500);
      table?.put(20n, { lastMs: 31_000 });
      mock.timers.tick(60_000);
      l.send(record(20n, true, 7, "min HTTP/1.1\r\n"));
      assert.deepEqual(l.seen(), [["blocked", "ids:1", "14", true]]);
      assert.equal(l.path.counters().gaps, 0);
    }
  } finally {
    mock.timers.reset();
  }
});

test("UDP flows cannot push a TCP flow out", () => {
  const l = lab(RULES);
  l.send(record(21n, true, 0, "GET /ad"));
  for (let i = 0n; i < BigInt(IDS_HELD.udp) + 1000n; i++)
    l.send(record(1_000_000n + i, true, 0, "x", { protocol: "udp" }));
  l.send(record(21n, true, 7, "min HTTP/1.1\r\n"));
  assert.deepEqual(l.seen(), [["blocked", "ids:1", "15", true]]);
});

test("a TCP flow pushed out anyway by more TCP flows: its next copy is lost, and cut", () => {
  const l = lab(RULES);
  l.send(record(22n, true, 0, "GET /ad"));
  for (let i = 0n; i < BigInt(IDS_HELD.tcp); i++) l.send(record(2_000_000n + i, true, 0, "GET /"));
  l.send(record(22n, true, 7, "min HTTP/1.1\r\n"));
  assert.deepEqual(l.seen(), [["blocked", "ids:stream", "16", true]]);
});

test("a policy whose signatures were all refused reports nothing", () => {
  const l = lab(
    `ids:\n  rules: ['alert tcp any any -> any 80 (content:"a"; pcre:"/a/"; sid:1;)']\n`,
  );
  l.send(record(11n, true, 0, "a"));
  assert.equal(l.events.length, 0);
});

test("a reload that turns the IDS off lets go of the flows held and the signatures they matched with", async () => {
  setFlagsFromString("--expose-gc");
  const gc = runInNewContext("gc") as () => void;
  const table = new Table();
  const l = lab(RULES, table);
  table.put(7n, {});
  const signatures = new WeakRef(l.model().ids!.signatures);
  l.send(record(7n, true, 0, "GET /ad"));
  l.reload("");
  for (let i = 0; i < 10 && signatures.deref(); i++) {
    await new Promise((resolve) => setImmediate(resolve));
    gc();
  }
  assert.equal(signatures.deref(), undefined, "the signatures of the policy before are garbage");
  // turned on again: a flow opened before is not read from its middle (and not cut for it)
  l.advance(1000);
  l.reload(RULES);
  l.send(record(7n, true, 7, "min HTTP/1.1\r\n"));
  assert.equal(l.events.length, 0, "no stream is put together with bytes from before");
  assert.equal(l.path.counters().gaps, 1);
});

const NO_HOST = `ids:
  mode: prevent
  bytes: 64
  rules:
    - 'drop tcp any any -> any 80 (msg:"no Host"; flow:to_server; content:"GET "; depth:4; content:!"Host:"; depth:200; sid:7;)'
`;

test("a negated content waits for the bytes its range covers: a request split before its Host header is not cut", () => {
  const l = lab(NO_HOST);
  l.send(record(1n, true, 0, "GET /index.html HTTP/1.1\r\n"));
  l.send(record(1n, true, 26, "Host: example.com\r\n\r\n"));
  assert.equal(l.events.length, 0);
  assert.equal(l.cuts.length, 0);
  // the window (64 bytes) is full without a Host: judged at once
  const head = "GET /index.html HTTP/1.1\r\n";
  l.send(record(2n, true, 0, head));
  assert.equal(l.events.length, 0);
  l.send(record(2n, true, head.length, "X-Pad: ".padEnd(64 - head.length, "x")));
  assert.deepEqual(
    l.events.map((e) => [e.type, e.rule, e.connection]),
    [["blocked", "ids:7", "2"]],
  );
  // eight copies are all the kernel copies of a direction: judged at the eighth
  let at = 0;
  for (const part of ["GET ", "/", "a", "b", "c", " ", "HTTP/1.0", "\r\n"]) {
    l.send(record(3n, true, at, part));
    at += part.length;
  }
  assert.deepEqual(
    l.events.map((e) => e.connection),
    ["2", "3"],
  );
  assert.equal(l.cuts.length, 2);
});

test("a flow is let go once its connection is closed, gone or past its copies, and judged on what arrived", () => {
  mock.timers.enable({ apis: ["setInterval"] });
  try {
    const table = new Table();
    const l = lab(NO_HOST, table);
    for (const id of [4n, 5n, 6n]) table.put(id, {});
    l.send(record(4n, true, 0, "GET / HTTP/1.0\r\n"));
    l.send(record(5n, true, 0, "GET / HTTP/1.1\r\nHost: a\r\n"));
    l.send(record(6n, true, 0, "GET "));
    l.advance(31_000);
    mock.timers.tick(30_000);
    assert.deepEqual(l.seen(), [], "their connections are open: held");
    table.put(4n, { closed: true });
    table.put(5n, { closed: true });
    l.advance(31_000);
    mock.timers.tick(30_000);
    assert.deepEqual(
      l.seen(),
      [["blocked", "ids:7", "4", true]],
      "flow 4 is let go, and judged; flow 5 had its Host; flow 6 is still held",
    );
    // idle past the kernel's timeout for an established connection
    l.advance(432_000_000);
    mock.timers.tick(30_000);
    assert.deepEqual(
      l.seen().map((e) => e[2]),
      ["4", "6"],
    );
  } finally {
    mock.timers.reset();
  }
});

// The live subscribers' sink: a cap on subscribers (503), one serialisation per event whose
// bytes every subscriber with the same filter shares, and a byte bound per subscriber past
// which it skips events, counted, and is told how many when it has room again; notices go to
// every subscriber, whatever its filter.
import { test } from "node:test";
import assert from "node:assert/strict";
import { SubscriberHub, type Channel } from "../../src/api/subscribers.ts";
import { HttpError } from "../../src/api/errors.ts";
import { parseFilter } from "../../src/observe/filter.ts";
import { fakeEvent } from "../helpers/events.ts";

function channel(framing: Channel["framing"] = "sse") {
  const writes: Buffer[] = [];
  const lost: number[] = [];
  let buffered = 0;
  const c: Channel = {
    framing,
    write: (b) => void writes.push(b),
    buffered: () => buffered,
    keepalive: () => {},
    lost: (n) => void lost.push(n),
    end: () => {},
  };
  return { c, writes, lost, setBuffered: (n: number) => (buffered = n) };
}

test("at most maxSubscribers; one more is a 503 ESUBSCRIBERS", (t) => {
  const hub = new SubscriberHub({
    maxSubscribers: 2,
    maxBufferedBytes: 1 << 20,
    keepaliveMs: 60_000,
  });
  t.after(() => hub.close());
  const gone = hub.add({}, channel().c);
  hub.add({}, channel().c);
  assert.throws(
    () => hub.add({}, channel().c),
    (err: unknown) => err instanceof HttpError && err.status === 503 && err.code === "ESUBSCRIBERS",
  );
  gone();
  hub.add({}, channel().c);
  assert.equal(hub.size, 2);
});

test("subscribers with the same filter get the very same bytes; others get theirs", (t) => {
  const hub = new SubscriberHub();
  t.after(() => hub.close());
  const a = channel();
  const b = channel();
  const blocked = channel();
  const ws = channel("websocket");
  hub.add({}, a.c);
  hub.add({}, b.c);
  hub.add(parseFilter(new URLSearchParams("type=allowed")), blocked.c);
  hub.add({}, ws.c);
  void hub.write([
    fakeEvent({ connection: "c1" }),
    fakeEvent({ type: "allowed", verdict: "allowed", connection: "c2" }),
  ]);
  assert.equal(a.writes.length, 1);
  assert.equal(a.writes[0], b.writes[0], "one buffer shared, not a copy per subscriber");
  assert.match(
    a.writes[0]?.toString() ?? "",
    /^event: blocked\ndata: \{.*"connection":"c1".*\}\n\nevent: allowed\n/s,
  );
  assert.match(blocked.writes[0]?.toString() ?? "", /^event: allowed\ndata: .*"connection":"c2"/s);
  assert.equal(ws.writes[0]?.[0], 0x81, "a WebSocket text frame");
});

test("a subscriber past its byte bound skips events, counted, and is told when it catches up", (t) => {
  const hub = new SubscriberHub({ maxSubscribers: 8, maxBufferedBytes: 1000, keepaliveMs: 60_000 });
  t.after(() => hub.close());
  const slow = channel();
  const fast = channel();
  hub.add({}, slow.c);
  hub.add({}, fast.c);
  slow.setBuffered(5000);
  void hub.write([fakeEvent(), fakeEvent()]);
  void hub.write([fakeEvent()]);
  assert.equal(slow.writes.length, 0);
  assert.deepEqual(hub.fanout(), { delivered: 3, dropped: 3 });
  slow.setBuffered(0);
  void hub.write([fakeEvent()]);
  assert.deepEqual(slow.lost, [3]);
  assert.equal(slow.writes.length, 1);
  assert.deepEqual(hub.fanout(), { delivered: 5, dropped: 3 });
});

test("a notice reaches every subscriber whatever its filter, unless it is over its bound", (t) => {
  const hub = new SubscriberHub({ maxSubscribers: 8, maxBufferedBytes: 1000, keepaliveMs: 60_000 });
  t.after(() => hub.close());
  const sse = channel();
  const filtered = channel();
  const ws = channel("websocket");
  const behind = channel();
  hub.add({}, sse.c);
  hub.add(parseFilter(new URLSearchParams("type=allowed")), filtered.c);
  hub.add({}, ws.c);
  hub.add({}, behind.c);
  behind.setBuffered(1001);
  const notice = {
    time: "2026-12-02T11:40:00.000Z",
    type: "events_lost" as const,
    count: 123,
    intervalMs: 5000,
  };
  hub.notice(notice);
  const sseText = `event: notice\ndata: ${JSON.stringify(notice)}\n\n`;
  assert.equal(String(sse.writes[0]), sseText);
  assert.equal(String(filtered.writes[0]), sseText);
  // a WebSocket text frame (125 bytes or fewer: a 2-byte header) holding the notice's JSON
  const frame = ws.writes[0];
  assert.ok(frame);
  assert.equal(frame[0], 0x81);
  assert.deepEqual(JSON.parse(String(frame.subarray(2))), notice);
  assert.equal(behind.writes.length, 0);
});

test("a batch goes out in one write per subscriber, every event in order, as each event's JSON", (t) => {
  const hub = new SubscriberHub();
  t.after(() => hub.close());
  const sse = channel();
  const ws = channel("websocket");
  const egress = channel();
  hub.add({}, sse.c);
  hub.add({}, ws.c);
  hub.add(parseFilter(new URLSearchParams("direction=egress")), egress.c);
  const batch = Array.from({ length: 300 }, (_, i) =>
    fakeEvent({
      type: i % 3 ? "blocked" : "allowed",
      verdict: i % 3 ? "blocked" : "allowed",
      direction: i % 2 ? "egress" : "ingress",
      connection: i.toString(16),
      // a name outside ASCII: the bytes are UTF-8, lengths in bytes
      remote: { ip: "192.0.2.1", port: 1000 + i, names: [`é${i}.example`] },
    }),
  );
  void hub.write(batch);
  assert.equal(sse.writes.length, 1);
  assert.equal(ws.writes.length, 1);
  assert.equal(egress.writes.length, 1);

  const sseEvents = (b: Buffer | undefined) =>
    String(b)
      .split("\n\n")
      .filter(Boolean)
      .map((block) => {
        const [kind, data] = block.split("\n");
        return { kind, data: data?.replace(/^data: /, "") };
      });
  assert.deepEqual(
    sseEvents(sse.writes[0]),
    batch.map((e) => ({ kind: `event: ${e.type}`, data: JSON.stringify(e) })),
  );
  assert.deepEqual(
    sseEvents(egress.writes[0]).map((e) => e.data),
    batch.filter((e) => e.direction === "egress").map((e) => JSON.stringify(e)),
  );

  // WebSocket: one text frame per event, back to back
  const frames: string[] = [];
  const bytes = ws.writes[0] ?? Buffer.alloc(0);
  for (let at = 0; at < bytes.length;) {
    assert.equal(bytes[at], 0x81);
    let len = (bytes[at + 1] ?? 0) & 0x7f;
    let head = 2;
    if (len === 126) {
      len = bytes.readUInt16BE(at + 2);
      head = 4;
    }
    frames.push(bytes.subarray(at + head, at + head + len).toString());
    at += head + len;
  }
  assert.deepEqual(
    frames,
    batch.map((e) => JSON.stringify(e)),
  );
  assert.deepEqual(hub.fanout(), { delivered: 750, dropped: 0 });
});

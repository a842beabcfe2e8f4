// The live subscribers' byte bound shares one budget: a lone subscriber whose reader pauses keeps
// receiving while its connection holds less than the budget, where a subscriber among many skips
// past the floor per subscriber; what is skipped is counted either way.
import { test } from "node:test";
import assert from "node:assert/strict";
import { SUBSCRIBER_LIMITS, SubscriberHub, type Channel } from "../../src/api/subscribers.ts";
import { fakeEvent } from "../helpers/events.ts";

function channel() {
  const writes: Buffer[] = [];
  let buffered = 0;
  const c: Channel = {
    framing: "sse",
    write: (b) => void writes.push(b),
    buffered: () => buffered,
    keepalive: () => {},
    end: () => {},
  };
  return { c, writes, setBuffered: (n: number) => (buffered = n) };
}

const floor = SUBSCRIBER_LIMITS.maxBufferedBytes;

test("a lone subscriber holding more than the floor, less than the budget, skips nothing", (t) => {
  const hub = new SubscriberHub(SUBSCRIBER_LIMITS);
  t.after(() => hub.close());
  const lone = channel();
  hub.add({}, lone.c);
  lone.setBuffered(4 * floor);
  void hub.write([fakeEvent(), fakeEvent()]);
  assert.equal(lone.writes.length, 1);
  assert.deepEqual(hub.fanout(), { delivered: 2, dropped: 0 });
  const budget = SUBSCRIBER_LIMITS.sharedBufferedBytes ?? 0;
  lone.setBuffered(budget + 1);
  void hub.write([fakeEvent()]);
  assert.equal(lone.writes.length, 1, "past the whole budget it skips");
  assert.deepEqual(hub.fanout(), { delivered: 2, dropped: 1 });
});

test("among many subscribers each keeps the floor: one holding more skips, counted", (t) => {
  const hub = new SubscriberHub(SUBSCRIBER_LIMITS);
  t.after(() => hub.close());
  const many = Array.from({ length: 64 }, () => channel());
  for (const s of many) hub.add({}, s.c);
  const behind = many[0]!;
  behind.setBuffered(floor + 1);
  void hub.write([fakeEvent()]);
  assert.equal(behind.writes.length, 0);
  assert.equal(many[1]!.writes.length, 1);
  assert.deepEqual(hub.fanout(), { delivered: 63, dropped: 1 });
});

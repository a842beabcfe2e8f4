// One filter text selects the same events live (matchesFilter, as subscriptions and `moat top`
// filter) and from the history (the store's SQL, as GET /v1/events and `moat events` read it).
import { test } from "node:test";
import assert from "node:assert/strict";
import { HistoryStore } from "../../src/observe/history/store.ts";
import { matchesFilter, parseFilter } from "../../src/observe/filter.ts";
import type { MoatEvent } from "../../src/datapath/event.ts";
import { fakeEvent } from "../helpers/events.ts";

const process = (pid: number, name: string, container?: { id: string; name: string }) =>
  ({ pid, name, exe: `/usr/bin/${name}`, user: 0, ...(container ? { container } : {}) }) as never;

const PROCESSES = [
  null,
  process(123, "curl"),
  process(7, "0123"),
  process(9, "123"),
  process(8, "Curl", { id: "abcdef0123", name: "web" }),
];
const ADDRESSES = ["10.0.0.5", "::ffff:10.0.0.5", "2001:db8::1", "0.0.0.0"];

const FILTERS = [
  "process=123",
  "process=0123",
  "process=00123",
  "process=curl",
  "container=abc",
  "container=web",
  "remote=10.0.0.0/8",
  "remote=::ffff:10.0.0.5",
  "remote=example.com",
  "verdict=allowed",
  "not=process%3D0123",
  "not=process%3Dcurl&type=blocked",
];

test("each filter selects the same events from the history as live", (t) => {
  const store = new HistoryStore(":memory:");
  t.after(() => store.close());
  const events: MoatEvent[] = [];
  for (const p of PROCESSES)
    for (const ip of ADDRESSES)
      for (const type of ["blocked", "dns", "closed"] as const)
        events.push(
          fakeEvent({
            type,
            verdict: type === "dns" ? "allowed" : "blocked",
            process: p,
            remote: { ip, port: 53, ...(type === "dns" ? { names: ["example.com"] } : {}) },
            connection: String(events.length),
          }),
        );
  store.insert(events);
  for (const text of FILTERS) {
    const filter = parseFilter(new URLSearchParams(text));
    const stored = store.query({ ...filter, limit: 1000 }).events.map((e) => e.connection);
    const live = events.filter((e) => matchesFilter(filter, e)).map((e) => e.connection);
    assert.deepEqual(stored.sort(), live.sort(), `${text}: the history and the live filter`);
  }
});

// Negated event filters (`moat events --not rule=ssh --not process=sshd`): each `not` leaves out
// what it matches on its own; the live matcher and the history's SQL leave out the same events,
// and an event without the field a `not` names (no process) stays. Plus the CLI's time arguments.
import { test } from "node:test";
import assert from "node:assert/strict";
import { HistoryStore } from "../../src/observe/history/store.ts";
import { FilterError, filterParams, matchesFilter, parseFilter } from "../../src/observe/filter.ts";
import { parseDuration, parseTimePoint } from "../../src/cli/time-args.ts";
import { UsageError } from "../../src/cli/command.ts";
import { fakeEvent } from "../helpers/events.ts";
import type { MoatEvent } from "../../src/datapath/index.ts";

const proc = (name: string, pid: number): MoatEvent["process"] => ({
  pid,
  name,
  path: `/usr/bin/${name}`,
  user: 0,
  cgroup: "/",
  container: null,
});

const events: MoatEvent[] = [
  fakeEvent({ connection: "1", rule: "ssh", process: proc("sshd", 10) }),
  fakeEvent({ connection: "2", rule: "default", process: proc("curl", 11) }),
  fakeEvent({
    connection: "3",
    rule: "default",
    process: null,
    remote: { ip: "10.9.0.1", port: 1 },
  }),
  fakeEvent({ connection: "4", rule: "web", type: "closed", process: proc("nginx", 12) }),
];

function both(query: string): { live: string[]; stored: string[] } {
  const filter = parseFilter(new URLSearchParams(query));
  const live = events.filter((e) => matchesFilter(filter, e)).map((e) => e.connection ?? "");
  const store = new HistoryStore(":memory:");
  try {
    store.insert(events);
    const stored = store.query({ ...filter, limit: 100 }).events.map((e) => e.connection ?? "");
    return { live, stored: stored.reverse() };
  } finally {
    store.close();
  }
}

test("each not leaves out what it matches; live and stored agree", () => {
  const cases: [string, string[]][] = [
    ["not=rule%3Dssh", ["2", "3", "4"]],
    ["not=rule%3Dssh&not=type%3Dclosed", ["2", "3"]],
    [
      "not=process%3Dcurl",
      ["1", "3", "4"], // no process: not curl, stays
    ],
    ["not=remote%3D10.0.0.0%2F8", ["1", "2", "4"]],
    ["rule=default&not=process%3Dcurl", ["3"]],
    // one not with two fields: left out only when both match
    ["not=rule%3Ddefault%26process%3Dcurl", ["1", "3", "4"]],
  ];
  for (const [query, expected] of cases) {
    const { live, stored } = both(query);
    assert.deepEqual(live, expected, `live ${query}`);
    assert.deepEqual(stored, expected, `stored ${query}`);
  }
});

test("filterParams writes not back; a not without a filter or with a not is refused", () => {
  const f = parseFilter(new URLSearchParams("type=blocked&not=rule%3Dssh&not=process%3Dcurl"));
  assert.deepEqual(parseFilter(filterParams(f)), f);
  assert.throws(() => parseFilter(new URLSearchParams("not=")), FilterError);
  assert.throws(() => parseFilter(new URLSearchParams("not=not%3Drule%253Dx")), FilterError);
  assert.throws(() => parseFilter(new URLSearchParams("not=type%3Dbogus")), /type 'bogus'/);
});

test("durations and points in time", () => {
  assert.equal(parseDuration("60s", "--confirm"), 60_000);
  assert.equal(parseDuration("90", "--confirm"), 90_000, "a bare number is seconds");
  assert.equal(parseDuration("1h30m", "--confirm"), 5_400_000);
  assert.equal(parseDuration("500ms", "--confirm"), 500);
  assert.throws(() => parseDuration("soon", "--confirm"), UsageError);
  const now = Date.parse("2026-12-03T10:00:00Z");
  assert.equal(parseTimePoint("10m", "--since", now), now - 600_000);
  assert.equal(parseTimePoint("1d", "--since", now), now - 86_400_000);
  assert.equal(parseTimePoint("2026-12-03T09:00:00Z", "--until", now), now - 3_600_000);
  assert.equal(parseTimePoint("1764756000000", "--since", now), 1764756000000);
  assert.throws(
    () => parseTimePoint("yesterday", "--since", now),
    /--since 'yesterday' is not a time/,
  );
});

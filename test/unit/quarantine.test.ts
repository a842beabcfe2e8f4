// A quarantine puts the host's address into its dynamic set; when the set is full the entry is
// not there, and the daemon's log must say so (not that the host is quarantined), and the next
// match tries again.
import { test } from "node:test";
import assert from "node:assert/strict";
import { quarantiner } from "../../src/daemon/quarantine.ts";
import type { PolicyModel } from "../../src/config/index.ts";
import type { MoatEvent } from "../../src/datapath/index.ts";

const model = {
  rules: [{ name: "ioc", quarantine: { set: "held", seconds: 600 } }],
} as unknown as PolicyModel;
const event = {
  type: "blocked",
  rule: "ioc",
  local: { ip: "10.0.0.5" },
  remote: { ip: "203.0.113.9" },
} as unknown as MoatEvent;

test("a quarantine that a full set cannot hold is logged as not done, and tried again", async () => {
  const logs: string[] = [];
  let full = true;
  let asked = 0;
  const onEvent = quarantiner({
    model: () => model,
    sets: {
      bulk: () => {
        asked++;
        return Promise.resolve(full ? { entries: 2, dropped: 1 } : { entries: 3, dropped: 0 });
      },
    },
    log: (line) => logs.push(line),
    now: () => 1_000_000,
  });
  onEvent(event);
  await new Promise((r) => setTimeout(r, 10));
  assert.deepEqual(logs, [
    "quarantine: 10.0.0.5 not put in set held: the set is full (max_entries) (rule ioc, remote 203.0.113.9)",
  ]);
  full = false;
  onEvent(event);
  await new Promise((r) => setTimeout(r, 10));
  assert.equal(asked, 2, "the next match tries again");
  assert.match(logs[1] ?? "", /^quarantine: 10\.0\.0\.5 in set held until /);
  onEvent(event);
  await new Promise((r) => setTimeout(r, 10));
  assert.equal(asked, 2, "a burst of matches writes the entry once");
});

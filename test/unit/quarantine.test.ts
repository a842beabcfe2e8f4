// A quarantine puts the host's address into its dynamic set; when the set is full or the change
// could not be applied the entry is not there, and the daemon's log must say so (not that the
// host is quarantined), and the next match tries again; a quarantine lifted early starts again.
import { test } from "node:test";
import assert from "node:assert/strict";
import { quarantiner } from "../../src/daemon/quarantine.ts";
import type { PolicyModel } from "../../src/config/index.ts";
import type { MoatEvent } from "../../src/datapath/index.ts";

const event = {
  type: "blocked",
  rule: "ioc",
  local: { ip: "10.0.0.5" },
  remote: { ip: "203.0.113.9" },
} as unknown as MoatEvent;

/** A policy whose set `held` holds `entries`: a new object at each apply, as the daemon's. */
const withHeld = (entries: string[]) =>
  ({
    rules: [{ name: "ioc", quarantine: { set: "held", seconds: 600 } }],
    sets: new Map([
      ["held", { name: "held", kind: "address", entries: entries.map((text) => ({ text })) }],
    ]),
  }) as unknown as PolicyModel;

const settle = () => new Promise((r) => setTimeout(r, 10));

test("a quarantine that a full set cannot hold is logged as not done, and tried again", async () => {
  const logs: string[] = [];
  let full = true;
  let asked = 0;
  let running = withHeld(["10.0.0.1", "10.0.0.2"]);
  const onEvent = quarantiner({
    model: () => running,
    sets: {
      bulk: () => {
        asked++;
        if (full) return Promise.resolve({ entries: 2, dropped: 1 });
        running = withHeld(["10.0.0.1", "10.0.0.2", "10.0.0.5"]);
        return Promise.resolve({ entries: 3, dropped: 0 });
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

test("a quarantine lifted early (moat set del) starts again at the next match", async () => {
  let running = withHeld([]);
  let asked = 0;
  const onEvent = quarantiner({
    model: () => running,
    sets: {
      bulk: () => {
        asked++;
        running = withHeld(["10.0.0.5"]); // applied before the answer
        return Promise.resolve({ entries: 1, dropped: 0 });
      },
    },
    log: () => {},
    now: () => 1_000_000,
  });
  onEvent(event);
  await settle();
  onEvent(event);
  await settle();
  assert.equal(asked, 1, "held: a match within half the timeout writes nothing");
  running = withHeld([]); // `moat set del held 10.0.0.5`
  onEvent(event);
  await settle();
  assert.equal(asked, 2, "lifted: the next match quarantines the host again");
});

test("a quarantine whose apply failed is tried again at the next match, and a burst asks once", async () => {
  const logs: string[] = [];
  let running = withHeld([]);
  let fail = true;
  let asked = 0;
  let answer: () => void = () => {};
  const onEvent = quarantiner({
    model: () => running,
    sets: {
      bulk: () => {
        asked++;
        if (fail) return Promise.reject(new Error("the policy could not be compiled again"));
        return new Promise((resolve) => {
          answer = () => {
            running = withHeld(["10.0.0.5"]);
            resolve({ entries: 1, dropped: 0 });
          };
        });
      },
    },
    log: (line) => logs.push(line),
    now: () => 1_000_000,
  });
  onEvent(event);
  await settle();
  assert.match(logs[0] ?? "", /^quarantine: 10\.0\.0\.5 not put in set held: the policy could not/);
  fail = false;
  onEvent(event);
  onEvent(event); // while the first is being applied
  await settle();
  assert.equal(asked, 2, "tried again once, not once a match");
  answer();
  await settle();
  onEvent(event);
  await settle();
  assert.equal(asked, 2, "held now");
});

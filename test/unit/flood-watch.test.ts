// The SYN flood attack events: one "started" when a port goes under attack, one "ended" when the
// kernel's hold after the last SYN over the rate ran out, none in between however the rate moves
// (the kernel keeps the attack going), and a new pair for a new attack.
import { test } from "node:test";
import assert from "node:assert/strict";
import { FloodWatch } from "../../src/daemon/flood-watch.ts";
import type { MoatEvent, PortAttack } from "../../src/datapath/index.ts";

const S = 1_000_000_000n;

function watch(
  initialMode: "detect" | "prevent" | null = "prevent",
  synCookies: "moat" | "kernel" = "moat",
) {
  let mode = initialMode;
  let attacks: PortAttack[] = [];
  const events: MoatEvent[] = [];
  const w = new FloodWatch(
    { floodAttacks: () => attacks, synCookies, generation: 3 },
    () => mode,
    (e) => events.push(e),
  );
  return {
    events,
    at(now: bigint, a: Partial<PortAttack>) {
      attacks = [{ port: 8080, sinceNs: 0n, untilNs: 0n, syns: 0n, over: 0n, ...a }];
      w.poll(now);
    },
    /** A reading in which the kernel holds no state for any port. */
    empty(now: bigint) {
      attacks = [];
      w.poll(now);
    },
    setMode(m: "detect" | "prevent" | null) {
      mode = m;
    },
  };
}

test("an attack that goes on for a while is one start and one end", () => {
  const w = watch();
  w.at(10n * S, { syns: 50n });
  assert.equal(w.events.length, 0, "no attack yet");
  // over the rate at 11 s; the kernel keeps it under attack until 2 s after each SYN over
  for (let t = 11n; t <= 20n; t++)
    w.at(t * S, { sinceNs: 11n * S, untilNs: (t + 2n) * S, syns: 50n + t * 1000n, over: t * 900n });
  assert.deepEqual(
    w.events.map((e) => e.attack?.state),
    ["started"],
  );
  w.at(23n * S, { sinceNs: 11n * S, untilNs: 22n * S, syns: 20050n, over: 18000n });
  const [start, end] = w.events;
  assert.equal(end?.attack?.state, "ended");
  assert.equal(end?.attack?.durationMs, 11_000, "start to the end of the hold");
  assert.equal(end?.attack?.over, 18000, "every SYN over the rate of the attack");
  assert.equal(start?.type, "blocked");
  assert.equal(start?.rule, "flood");
  assert.equal(start?.reason, "syn_flood");
  assert.equal(start?.attack?.port, 8080);
  assert.equal(start?.attack?.answered, "moat");
  w.at(30n * S, { sinceNs: 11n * S, untilNs: 22n * S, syns: 20060n, over: 18000n });
  assert.equal(w.events.length, 2, "nothing more while quiet");
});

test("a new attack after the end is a new pair; detect mode reports it as detected", () => {
  const w = watch("detect");
  w.at(1n * S, { sinceNs: 1n * S, untilNs: 3n * S, syns: 10n, over: 5n });
  w.at(4n * S, { sinceNs: 1n * S, untilNs: 3n * S, syns: 10n, over: 5n });
  // started again between two readings: the old one ended first
  w.at(9n * S, { sinceNs: 8n * S, untilNs: 10n * S, syns: 30n, over: 20n });
  assert.deepEqual(
    w.events.map((e) => [e.type, e.attack?.state, e.attack?.answered]),
    [
      ["detected", "started", "kernel"],
      ["detected", "ended", "kernel"],
      ["detected", "started", "kernel"],
    ],
  );
  assert.equal(w.events[2]?.attack?.over, 15, "counted from the last reading before it");
});

test("an attack that ends and another that starts between two readings are reported apart", () => {
  const w = watch();
  // the port's long past: 1,000,000 SYNs, 1000 over the rate in an attack long over
  w.at(100n * S, { sinceNs: 50n * S, untilNs: 60n * S, syns: 1_000_000n, over: 1000n });
  w.at(201n * S, { sinceNs: 200n * S, untilNs: 201n * S + S / 2n, syns: 1_000_100n, over: 1050n });
  // the first attack's hold ran out at 201.5 s; a second began at 201.8 s: 10 SYNs, 5 over
  const secondSince = 201n * S + (8n * S) / 10n;
  w.at(202n * S, { sinceNs: secondSince, untilNs: secondSince + S, syns: 1_000_110n, over: 1055n });
  assert.deepEqual(
    w.events.map((e) => e.attack),
    [
      { state: "started", port: 8080, syns: 100, over: 50, answered: "moat" },
      { state: "ended", port: 8080, syns: 100, over: 50, durationMs: 1500, answered: "moat" },
      { state: "started", port: 8080, syns: 10, over: 5, answered: "moat" },
    ],
  );
});

test("without the kernel's cookie kfunc a prevent policy reports attacks as detected", () => {
  const w = watch("prevent", "kernel");
  w.at(2n * S, { sinceNs: 1n * S, untilNs: 11n * S, syns: 5000n, over: 4000n });
  w.at(12n * S, { sinceNs: 1n * S, untilNs: 11n * S, syns: 5000n, over: 4000n });
  assert.deepEqual(
    w.events.map((e) => [e.type, e.verdict, e.mode, e.attack?.state, e.attack?.answered]),
    [
      ["detected", "detected", "detect", "started", "kernel"],
      ["detected", "detected", "detect", "ended", "kernel"],
    ],
  );
});

test("a reload that removes the flood section ends the attack under way", () => {
  const w = watch();
  w.at(2n * S, { sinceNs: 1n * S, untilNs: 5n * S, syns: 300n, over: 200n });
  w.at(3n * S, { sinceNs: 1n * S, untilNs: 6n * S, syns: 700n, over: 600n });
  w.setMode(null);
  w.at(4n * S, { sinceNs: 1n * S, untilNs: 7n * S, syns: 900n, over: 800n });
  const end = w.events[1];
  assert.equal(w.events.length, 2, "one start, one end");
  assert.equal(end?.type, "blocked", "in the mode the attack was reported in");
  assert.equal(end?.mode, "prevent");
  assert.deepEqual(end?.attack, {
    state: "ended",
    port: 8080,
    syns: 700,
    over: 600,
    durationMs: 3000,
    answered: "moat",
  });
  w.at(5n * S, { sinceNs: 1n * S, untilNs: 8n * S, syns: 999n, over: 900n });
  assert.equal(w.events.length, 2, "nothing more without a flood section");
});

test("a reload that stops defending the port ends the attack under way", () => {
  const w = watch("detect");
  w.at(2n * S, { sinceNs: 1n * S, untilNs: 5n * S, syns: 300n, over: 200n });
  w.empty(3n * S);
  assert.deepEqual(
    w.events.map((e) => [e.type, e.attack]),
    [
      ["detected", { state: "started", port: 8080, syns: 300, over: 200, answered: "kernel" }],
      [
        "detected",
        {
          state: "ended",
          port: 8080,
          syns: 300,
          over: 200,
          durationMs: 2000,
          answered: "kernel",
        },
      ],
    ],
  );
});

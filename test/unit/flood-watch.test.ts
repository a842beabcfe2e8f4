// The SYN flood attack events: one "started" when a port goes under attack, one "ended" when the
// kernel's hold after the last SYN over the rate ran out, none in between however the rate moves
// (the kernel keeps the attack going), and a new pair for a new attack.
import { test } from "node:test";
import assert from "node:assert/strict";
import { FloodWatch } from "../../src/daemon/flood-watch.ts";
import type { MoatEvent, PortAttack } from "../../src/datapath/index.ts";

const S = 1_000_000_000n;

function watch(mode: "detect" | "prevent" = "prevent") {
  let attacks: PortAttack[] = [];
  const events: MoatEvent[] = [];
  const w = new FloodWatch(
    { floodAttacks: () => attacks, synCookies: "moat", generation: 3 },
    () => mode,
    (e) => events.push(e),
  );
  return {
    events,
    at(now: bigint, a: Partial<PortAttack>) {
      attacks = [{ port: 8080, sinceNs: 0n, untilNs: 0n, syns: 0n, over: 0n, ...a }];
      w.poll(now);
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

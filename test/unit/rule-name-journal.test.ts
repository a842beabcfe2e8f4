// The rule names journal: a daemon's event path journals each generation it applies, beside the
// history; the next daemon's event path, on the same pins, names the rules (their reasons) and
// redirects of the previous daemon's last generations, and keeps the rule's number for
// generations older than those kept or journaled for other pins (a clean stop removed them).
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { event as eventCodec, EventType, Hook, Mode } from "../../src/datapath/abi.ts";
import type { MoatEvent } from "../../src/datapath/event.ts";
import { GenerationRecord, KEPT_GENERATIONS } from "../../src/datapath/generations.ts";
import { PinnedMaps } from "../../src/datapath/pinned-maps.ts";
import { removeTree } from "../../src/datapath/bpffs.ts";
import type { ImageRule } from "../../src/policy/compile/image.ts";
import { startEventPath, type EventPath } from "../../src/daemon/event-path.ts";

const mapped = (ip: string) =>
  Buffer.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, ...ip.split(".").map(Number)]);

const record = (rule: number, generation: number, redirect = 0) =>
  eventCodec.encode({
    local: mapped("10.66.0.1"),
    remote: mapped("10.231.7.1"),
    local_port: 80,
    remote_port: 40122,
    ifindex: 2,
    rule,
    generation,
    redirect,
    type: EventType.blocked,
    verdict: EventType.blocked,
    hook: Hook.xdpIngress,
    family: 4,
    protocol: 6,
    direction: 0,
    mode: Mode.prevent,
    reason: 0,
  });

const rule = (name: string, reason?: "doh"): ImageRule => ({
  name,
  action: "block",
  mode: "prevent",
  log: true,
  maxDurationSeconds: 0,
  ...(reason ? { reason } : {}),
});

/** The rules of generation `g`: the names move between generations. */
const rulesOf = (g: number) => [rule(`first-${g}`), rule(`second-${g}`, "doh"), rule("default")];

/** A daemon's event path over `pinRoot`, its policy at `generation`; deliver() decodes a record. */
function daemon(place: { dir: string; pinRoot: string }, generation: number, namesFrom?: number) {
  const contents = new GenerationRecord(KEPT_GENERATIONS, namesFrom);
  const live = { generation };
  const apply = (g: number) => {
    contents.record(g, {
      rules: rulesOf(g),
      redirects: [
        { name: `proxy-${g}`, ip: "127.0.0.1", family: 4, port: 3128, unavailable: "block" },
      ],
    });
    live.generation = g;
  };
  apply(generation);
  let deliver: (r: Buffer) => void = () => assert.fail("not subscribed");
  const events: MoatEvent[] = [];
  const path: EventPath = startEventPath({
    source: {
      contents,
      get generation() {
        return live.generation;
      },
      subscribe: (onRecord) => (deliver = onRecord),
      counters: () => ({ eventLost: { packets: 0n }, ctFull: { packets: 0n } }),
    },
    push: (e) => events.push(e),
    process: () => assert.fail("no owner"),
    interfaces: () => [{ name: "eth0", ifindex: 2 }],
    destroy: () => null,
    log: () => {},
    bootTimeMs: 0,
    ruleNames: place,
  });
  return {
    applied: (g: number) => {
      apply(g);
      path.applied();
    },
    decode: (r: Buffer): MoatEvent => {
      deliver(r);
      path.close();
      return events.at(-1)!;
    },
    close: () => path.close(),
  };
}

function pinsAndDir(t: { after: (f: () => void) => void }) {
  const dir = mkdtempSync(join(tmpdir(), "moat-rule-names-"));
  const pinRoot = `/sys/fs/bpf/moat-test-rule-names-${process.pid}`;
  new PinnedMaps(pinRoot).close(); // the pins' abi record, as a daemon leaves it
  t.after(() => {
    removeTree(pinRoot);
    rmSync(dir, { recursive: true, force: true });
  });
  return { pinRoot, place: { dir: join(dir, "rule-names"), pinRoot } };
}

// (the record keeps a policy of more rules than namesFrom as names and bytes: these are of 3)
for (const [kept, namesFrom] of [
  ["objects", undefined],
  ["names", 2],
] as const)
  test(`the next daemon names the rules and redirects of the previous daemon's kept generations (kept as ${kept})`, (t) => {
    const { place } = pinsAndDir(t);
    const old = daemon(place, 1, namesFrom);
    for (let g = 2; g <= 6; g++) old.applied(g);
    old.close(); // (a kill runs no clean-up: nothing is written at close)

    const next = daemon(place, 7, namesFrom);
    t.after(() => next.close());
    const at6 = next.decode(record(1, 6, 1));
    assert.equal(at6.rule, "second-6");
    assert.equal(at6.reason, "doh", "a rule's own reason is journaled with its name");
    assert.deepEqual(at6.redirect, { name: "proxy-6", to: { ip: "127.0.0.1", port: 3128 } });
    assert.equal(next.decode(record(0, 7 - KEPT_GENERATIONS + 1)).rule, "first-4");
    assert.equal(next.decode(record(0, 7 - KEPT_GENERATIONS)).rule, "#0", "older than those kept");
    assert.equal(next.decode(record(0, 7)).rule, "first-7", "its own generation first");

    // the previous daemon's generations leave as the new ones come
    for (let g = 8; g <= 9; g++) next.applied(g);
    assert.equal(next.decode(record(0, 6)).rule, "first-6");
    assert.equal(next.decode(record(0, 5)).rule, "#0");
    assert.deepEqual(
      readdirSync(place.dir).sort(),
      ["6", "7", "8", "9"],
      "the journal keeps as many generations as the daemon does",
    );
  });

test("a journal of other pins (a clean stop removed them; new pins made) is not read", (t) => {
  const { pinRoot, place } = pinsAndDir(t);
  const old = daemon(place, 1);
  old.applied(2);
  old.close();
  removeTree(pinRoot);
  new PinnedMaps(pinRoot).close();
  // pins made anew start again at generation 1; a kill after it, the next one starts at 3
  const next = daemon(place, 3);
  t.after(() => next.close());
  assert.equal(next.decode(record(0, 2)).rule, "#0");
});

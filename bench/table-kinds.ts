// B1 (docs/performance.md, "B1: the connection table's kind"): what a NEW connection's insert
// costs in each kind of table the connection table could be, with nothing of moat's judging
// around it. The table floor (bench/table-floor.ts, bpf/include/ct_floor.h) in each kind, the
// kinds alternated round by round (the order reversed every other round), each against moat's
// own XDP floor (no policy) measured just before it in the same round:
//   - filling: a new table, every run a new connection inserted, three quarters of the smallest
//     share of any kind filled (no insert evicts);
//   - full: the table filled with twice its size first, then the bench's 8 x 1e5 runs, each a new
//     connection that evicts one (the plain hash's insert fails instead);
//   - ESTABLISHED: 8 x 4096 connections seen, then looked up again.
// Run it on one CPU (taskset) so the per-CPU kinds fill the share of that CPU only.
//
//   taskset -c 1 node bench/table-kinds.ts [rounds]
import { readFileSync } from "node:fs";
import { loadavg } from "node:os";
import type { BpfObject, BpfProgram } from "../src/datapath/native.d.ts";
import { packet } from "../test/helpers/packets.ts";
import { anchorXdp } from "../test/helpers/xdp-anchor.ts";
import { FILL, load, type TableObject } from "./table-floor.ts";
import { benchDatapaths, testRunNs } from "./test-runs.ts";

const KEYS = 4096;
const REPEAT = 100_000;
const SIZE = 65_536;
const ROUNDS = Number(process.argv[2] ?? 7);
const DPORTS = [22, 80, 443, 3306, 8080, 20_000, 40_000, 60_000];
const PROBES = DPORTS.map((dport) =>
  packet({ src: "192.0.2.1", dst: "10.0.0.1", proto: "tcp", sport: 1000, dport, flags: "S" }),
);

/** CPUs the kernel divides a per-CPU LRU's entries among (num_possible_cpus()). */
function possibleCpus(): number {
  const text = readFileSync("/sys/devices/system/cpu/possible", "utf8").trim();
  return text.split(",").reduce((n, range) => {
    const [a = 0, b = a] = range.split("-").map(Number);
    return n + b - a + 1;
  }, 0);
}
const CPUS = possibleCpus();

interface Kind {
  name: string;
  object: TableObject;
  maxEntries: number;
  /** Entries one CPU can hold. */
  share: number;
}
const KINDS: Kind[] = [
  { name: "LRU, common lists (moat's)", object: "ct_floor", maxEntries: SIZE, share: SIZE },
  // one more entry: the kernel rounds the buckets up to a power of two, so twice as many
  { name: "LRU, twice the buckets", object: "ct_floor", maxEntries: SIZE + 1, share: SIZE + 1 },
  {
    name: "LRU, per-CPU lists",
    object: "ct_floor_no_common_lru",
    maxEntries: SIZE,
    share: SIZE / CPUS,
  },
  {
    name: `LRU, per-CPU lists, ${SIZE} a CPU`,
    object: "ct_floor_no_common_lru",
    maxEntries: SIZE * CPUS,
    share: SIZE,
  },
  { name: "hash, preallocated", object: "ct_floor_hash", maxEntries: SIZE, share: SIZE },
];
/** Runs of each probe while filling: under every kind's share. */
const FILLING = Math.floor((Math.min(...KINDS.map((k) => k.share)) * 3) / 4 / PROBES.length);

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const perRun = (program: BpfProgram, repeat: number) =>
  mean(PROBES.map((data) => testRunNs(program, data, repeat)));
function entries(o: BpfObject): number {
  const table = o.map("table");
  let n = 0;
  for (let k = table.nextKey(null); k; k = table.nextKey(k)) n++;
  return n;
}

/** `kind`'s table floor loaded and anchored for the length of `use`. */
function withTable<T>(
  kind: Kind,
  fresh: boolean,
  use: (o: BpfObject, program: BpfProgram) => T,
): T {
  const o = load(KEYS, fresh, 0, kind.object, kind.maxEntries);
  const program = o.program("ct_floor");
  const anchor = anchorXdp(program);
  try {
    return use(o, program);
  } finally {
    anchor.release();
    o.close();
  }
}

interface Round {
  floor: number;
  filling: number;
  full: number;
  fullEntries: number;
  established: number;
}
function round(kind: Kind, floor: () => number): Round {
  const f = floor();
  const { filling, full, fullEntries } = withTable(kind, true, (o, program) => {
    const filling = perRun(program, FILLING);
    testRunNs(program, PROBES[0] ?? Buffer.alloc(0), Math.max(FILL, 2 * kind.maxEntries));
    return { filling, full: perRun(program, REPEAT), fullEntries: entries(o) };
  });
  const established = withTable(kind, false, (_, program) => {
    for (const data of PROBES) testRunNs(program, data, KEYS);
    return perRun(program, REPEAT);
  });
  return { floor: f, filling, full, fullEntries, established };
}

const bench = benchDatapaths(KEYS);
try {
  const floor = () => mean(PROBES.map((data) => testRunNs(bench.fresh.xdp, data, REPEAT)));
  const rounds = new Map<Kind, Round[]>(KINDS.map((k) => [k, []]));
  console.log(
    `${CPUS} possible CPUs; filling ${PROBES.length} x ${FILLING} runs; load ${loadavg()[0]?.toFixed(2)}`,
  );
  for (let r = 0; r < ROUNDS; r++) {
    for (const kind of r % 2 ? [...KINDS].reverse() : KINDS) {
      const x = round(kind, floor);
      rounds.get(kind)?.push(x);
      const over = (v: number) => Math.round(v - x.floor);
      console.log(
        `round ${r + 1} ${kind.name}: floor ${Math.round(x.floor)}, over it filling ${over(x.filling)}, ` +
          `full ${over(x.full)} (${x.fullEntries} entries), ESTABLISHED ${over(x.established)}; ` +
          `load ${loadavg()[0]?.toFixed(2)}`,
      );
    }
  }
  /** Median over the rounds of a figure less its round's floor, with the lowest and highest. */
  const over = (xs: Round[], pick: (x: Round) => number) => {
    const d = xs.map((x) => pick(x) - x.floor);
    return `${Math.round(median(d))} (${Math.round(Math.min(...d))}..${Math.round(Math.max(...d))})`;
  };
  console.table(
    KINDS.map((kind) => {
      const xs = rounds.get(kind) ?? [];
      return {
        kind: kind.name,
        "floor ns": Math.round(median(xs.map((x) => x.floor))),
        "NEW filling - floor": over(xs, (x) => x.filling),
        "NEW full - floor": over(xs, (x) => x.full),
        "entries when full": median(xs.map((x) => x.fullEntries)),
        "EST - floor": over(xs, (x) => x.established),
      };
    }),
  );
} finally {
  bench.stop();
}

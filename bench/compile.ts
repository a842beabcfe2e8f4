// How long compile() takes and how big its tables get, for growing rule lists and for one rule
// using a set of a million CIDRs. compile() is timed, and for the "-yaml" cases the real loader
// too (loadMs: the text checked into a model); the other cases are built as models directly (see
// mixedModel, bigSetModel).
//
//   node --expose-gc bench/compile.ts            (all cases)
//   node --expose-gc bench/compile.ts 1000 set   (some cases)
//   node --expose-gc bench/compile.ts 1000-yaml 10000-yaml 100000-yaml   (the loader)

import { parsePolicy, type PolicyHost, type PolicyModel } from "../src/config/index.ts";
import type { IntervalEntry, SourcePos } from "../src/config/model.ts";
import { compile } from "../src/policy/compile/compile.ts";
import type { ClassifierImage } from "../src/policy/compile/image.ts";

/** Deterministic random numbers (mulberry32), so runs are comparable. */
export function random(seed: number): () => number {
  let s = seed | 0;
  return () => {
    s = (s + 0x6d2b79f5) | 0;
    let t = Math.imul(s ^ (s >>> 15), 1 | s);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

/** A random IPv4 CIDR with a prefix length in [shortest, 32]. */
export function cidr(rand: () => number, shortest = 16): string {
  const len = shortest + Math.floor(rand() * (33 - shortest));
  const value = Math.floor(rand() * 2 ** 32);
  const net = len === 0 ? 0 : (value & ~((2 ** (32 - len) - 1) | 0)) >>> 0;
  return `${net >>> 24}.${(net >>> 16) & 255}.${(net >>> 8) & 255}.${net & 255}/${len}`;
}

/** An IPv4 CIDR as the model's interval entry, built directly: the loader is not what is measured. */
export function cidrEntry(text: string, pos: SourcePos): IntervalEntry {
  const [address = "", len = "32"] = text.split("/");
  const start = address.split(".").reduce((v, part) => (v << 8n) | BigInt(part), 0n);
  const end = start | ((1n << BigInt(32 - Number(len))) - 1n);
  return { kind: "interval", text, negate: false, pos, family: 4, start, end };
}

const HEADER = "version: 1\nmode: prevent\ndefaults: { ingress: block, egress: allow }\n";

/** The YAML of `count` mixed rules: remote /16../32, one port or a small range, tcp or udp. */
export function mixedPolicy(count: number): string {
  const rand = random(count);
  const lines = [HEADER, "rules:"];
  for (let i = 0; i < count; i++) {
    const lo = 1 + Math.floor(rand() * 65000);
    const port = rand() < 0.7 ? String(lo) : `"${lo}-${lo + 1 + Math.floor(rand() * 15)}"`;
    lines.push(
      `  - name: r${i}`,
      "    direction: ingress",
      `    action: ${rand() < 0.5 ? "allow" : "block"}`,
      `    layer3: { remote: [${cidr(rand)}] }`,
      `    layer4: { protocol: ${rand() < 0.5 ? "tcp" : "udp"}, port: [${port}] }`,
    );
  }
  return lines.join("\n") + "\n";
}

/**
 * The same policy built as a model directly: the loader's shadowing check is quadratic in the
 * number of rules (10k rules take ~50 s to load), which is not what this measures.
 */
export function mixedModel(count: number): PolicyModel {
  const model = parsePolicy(HEADER, "bench.yaml");
  const rand = random(count);
  const pos = { file: "bench.yaml", line: 1, col: 1, path: "rules" };
  for (let index = 0; index < count; index++) {
    const lo = 1 + Math.floor(rand() * 65000);
    const hi = rand() < 0.7 ? lo : lo + 1 + Math.floor(rand() * 15);
    const action = rand() < 0.5 ? "allow" : "block";
    const entry = cidrEntry(cidr(rand), pos);
    const protocol = rand() < 0.5 ? 6 : 17;
    model.rules.push({
      index,
      name: `r${index}`,
      action,
      mode: "prevent",
      ownMode: false,
      log: false,
      pos: { ...pos, line: 5 * index + 5 },
      direction: "ingress",
      layer3: { remote: { entries: [entry], pos }, pos },
      layer4: { protocol, ports: [{ lo, hi, text: `${lo}-${hi}`, pos }], pos },
    });
  }
  return model;
}

/** A block list rule using a set of `count` random CIDRs (/shortest../32), then an ssh rule. */
export function bigSetModel(count: number, shortest: number): PolicyModel {
  const text = `${HEADER}sets:
  blocklist: { file: blocklist.txt }
rules:
  - name: blocklist
    direction: any
    action: block
    layer3: { remote: [set:blocklist] }
  - name: ssh
    direction: ingress
    action: allow
    layer4: { protocol: tcp, port: [22] }
`;
  const host: PolicyHost = { readFile: () => "192.0.2.0/24", resolve: (_, path) => path };
  const model = parsePolicy(text, "bench.yaml", host);
  // the loader's shadowing check is quadratic in a set's entries (40k entries take ~1 min), so
  // the million entries go into the loaded set directly (rules share its entries array)
  const set = model.sets.get("blocklist");
  if (set?.kind !== "address") throw new Error("the bench policy has no address set");
  const rand = random(7);
  const pos = { file: "blocklist.txt", line: 1, col: 1, path: "sets.blocklist" };
  set.entries.length = 0;
  for (let i = 0; i < count; i++) {
    set.entries.push(cidrEntry(cidr(rand, shortest), pos));
  }
  return model;
}

const gc = (globalThis as { gc?: () => void }).gc;
const heapMiB = (): number => {
  gc?.();
  return process.memoryUsage().heapUsed / 2 ** 20;
};

interface Row {
  case: string;
  loadMs: number;
  compileMs: number;
  lpm: number;
  classes: string;
  remoteY: number;
  heapMiB: number;
  rssMiB: number;
  phases: string;
}

function measure(name: string, load: () => PolicyModel): Row {
  let t = performance.now();
  const model = load();
  const loadMs = performance.now() - t;
  const before = heapMiB();
  t = performance.now();
  const phases: string[] = [];
  const image: ClassifierImage = compile(model, {
    onPhase: (phase, ms) => phases.push(`${phase} ${Math.round(ms)}`),
  });
  const compileMs = performance.now() - t;
  const heap = heapMiB() - before;
  return {
    case: name,
    loadMs: Math.round(loadMs),
    compileMs: Math.round(compileMs),
    lpm: image.remote4.length + image.remote6.length + image.local4.length + image.local6.length,
    classes: `r${image.nr} l${image.nl} s${image.ns} p${image.np} x${image.nx} y${image.ny}`,
    remoteY: image.remoteY.r.length,
    heapMiB: Math.round(heap),
    rssMiB: Math.round(process.memoryUsage().rss / 2 ** 20),
    phases: phases.join(", "),
  };
}

const CASES: Record<string, () => PolicyModel> = {
  "10": () => mixedModel(10),
  "1000": () => mixedModel(1000),
  "1000-yaml": () => parsePolicy(mixedPolicy(1000), "bench.yaml"),
  "10000-yaml": () => parsePolicy(mixedPolicy(10_000), "bench.yaml"),
  "100000-yaml": () => parsePolicy(mixedPolicy(100_000), "bench.yaml"),
  "10000": () => mixedModel(10_000),
  "100000": () => mixedModel(100_000),
  set: () => bigSetModel(1_000_000, 16),
  "set-24": () => bigSetModel(1_000_000, 24),
};

function main(): void {
  const wanted = process.argv.slice(2);
  const rows: Row[] = [];
  for (const [name, load] of Object.entries(CASES)) {
    if (wanted.length > 0 && !wanted.includes(name)) continue;
    const label =
      name === "set"
        ? "set of 1M CIDRs /16-/32"
        : name === "set-24"
          ? "set of 1M CIDRs /24-/32"
          : name.endsWith("-yaml")
            ? `${name.slice(0, -5)} mixed rules via YAML`
            : `${name} mixed rules`;
    rows.push(measure(label, load));
    console.error(`done: ${label}`);
  }
  if (!gc) console.error("(run with --expose-gc for exact heap numbers)");
  console.table(rows.map(({ phases: _, ...row }) => row));
  console.log("\nms per compile phase:");
  for (const row of rows) console.log(`  ${row.case}: ${row.phases}`);
}

if (import.meta.main) main();

// Process classes for the socket hooks (docs/socket-hooks.md): the rules' `process` sections,
// resolved against what exists on this host, become four small key -> class tables the kernel
// reads with the caller's executable inode, comm, uid and cgroup id, and three combination tables
// that turn those four classes into one process class P. No per-rule loop: seven lookups.
//
// A field class is the set of process rules whose constraint on that field the key satisfies
// (rules that do not constrain the field are in every class of it). Class 0 of every field is
// the set of keys no pattern names (a kernel miss). P is the intersection of the four sets: the
// process rules the caller's whole process section matches.

import type { PolicyModel, ProcessMatch } from "../../config/model.ts";
import type { ContainerFacts } from "../../attribution/types.ts";
import { globMatch } from "../glob.ts";
import { containerIdMatch, imageMatch, inCgroup, splitUsers } from "../match-context.ts";
import type { Runs } from "./classes.ts";
import type { LpmEntry } from "./image.ts";
import { countLpm6, lpmEntries6 } from "./lpm.ts";

/** What is on this host now, for the kernel's keys (src/policy/process-universe.ts reads it). */
export interface ProcessUniverse {
  /** Executables some rule's path glob may name; `dev` in the kernel's encoding (MKDEV). */
  executables: { dev: number; ino: bigint; path: string }[];
  /** User name -> uid (/etc/passwd). */
  users: Map<string, number>;
  /** Every cgroup directory, with its container if it is one's. */
  cgroups: { id: bigint; path: string; container: ContainerFacts | null }[];
}

export interface ProcessImage {
  exe: { dev: number; ino: bigint; cls: number }[];
  uid: { uid: number; cls: number }[];
  cgroup: { id: bigint; cls: number }[];
  /** comm (16 bytes, NUL padded) as a 128-bit LPM key: exact names and "prefix*". */
  comm: LpmEntry[];
  /** Class counts of the name, user and cgroup fields (the path's is the first factor). */
  nn: number;
  nu: number;
  nc: number;
  /** A[path * nn + name] -> a; B[a * nu + user] -> b; P[b * nc + cgroup] -> process class. */
  a: Uint32Array;
  b: Uint32Array;
  p: Uint32Array;
  /** Number of process classes (P values). */
  count: number;
  /** Policy rule index -> the process classes its process section matches. */
  classesOf: Map<number, number[]>;
}

/** At most this many process classes: P travels in the client-port slot (docs/socket-hooks.md). */
export const MAX_PROCESS_CLASSES = 65536;
const MAX_TABLE = 4_000_000;

/** Rule sets (sorted ordinals of process rules), numbered in order of first appearance. */
class SetIds {
  readonly sets: number[][] = [];
  readonly #ids = new Map<string, number>();

  id(set: number[]): number {
    const key = set.join(",");
    let id = this.#ids.get(key);
    if (id === undefined) {
      id = this.sets.length;
      this.#ids.set(key, id);
      this.sets.push(set);
    }
    return id;
  }
}

function intersect(a: number[], b: number[]): number[] {
  const out: number[] = [];
  let i = 0;
  let k = 0;
  while (i < a.length && k < b.length) {
    if (a[i]! < b[k]!) i++;
    else if (a[i]! > b[k]!) k++;
    else {
      out.push(a[i]!);
      i++;
      k++;
    }
  }
  return out;
}

/** One field's classes: class 0 is the ordinals `wild` (the field unconstrained) alone. */
function field(wild: number[]): { ids: SetIds; of: (named: number[]) => number } {
  const ids = new SetIds();
  ids.id(wild);
  return {
    ids,
    of: (named) => ids.id([...new Set([...wild, ...named])].sort((x, y) => x - y)),
  };
}

const COMM_BYTES = 16;
const COMM_END = 1n << 128n;

/** comm bytes as a 128-bit number, NUL padded (what bpf_get_current_comm() writes). */
function commValue(text: string): bigint {
  const bytes = Buffer.from(text, "utf8");
  let v = 0n;
  for (let i = 0; i < COMM_BYTES; i++) v = (v << 8n) | BigInt(bytes[i] ?? 0);
  return v;
}

/** A name pattern as a range of comm values; null for patterns the kernel cannot match. */
export function commRange(pattern: string): [bigint, bigint] | null {
  const star = pattern.endsWith("*") ? pattern.slice(0, -1) : null;
  const literal = star ?? pattern;
  if (/[*?]/.test(literal) || Buffer.byteLength(literal) > COMM_BYTES - 1) return null;
  const lo = commValue(literal);
  const free = BigInt(8 * (COMM_BYTES - Buffer.byteLength(literal)));
  return [lo, star === null ? lo + 1n : lo + (1n << free)];
}

function cgroupMatches(rule: ProcessMatch, c: ProcessUniverse["cgroups"][number]): boolean {
  if (rule.cgroup && !rule.cgroup.some((p) => inCgroup(p, c.path))) return false;
  const want = rule.container;
  if (!want) return true;
  const have = c.container;
  if (!have) return false;
  return (
    (want.id === undefined || containerIdMatch(want.id, have.id)) &&
    (want.name === undefined || globMatch(want.name, have.name)) &&
    (want.image === undefined || imageMatch(want.image, have.image))
  );
}

function combine(x: number[][], y: number[][], what: string): { table: Uint32Array; ids: SetIds } {
  if (x.length * y.length > MAX_TABLE) {
    throw Object.assign(
      new Error(
        `the process ${what} table needs ${x.length * y.length} entries (limit ${MAX_TABLE})`,
      ),
      { code: "EPOLICYSIZE" },
    );
  }
  const ids = new SetIds();
  const table = new Uint32Array(x.length * y.length);
  for (let i = 0; i < x.length; i++) {
    for (let k = 0; k < y.length; k++) table[i * y.length + k] = ids.id(intersect(x[i]!, y[k]!));
  }
  return { table, ids };
}

/** The process rules' classes on this host; null when no rule has a process section. */
export function compileProcess(model: PolicyModel, universe: ProcessUniverse): ProcessImage | null {
  const rules = model.rules.filter((r) => r.process);
  if (rules.length === 0) return null;
  const ordinals = rules.map((_, j) => j);
  const wildWhere = (unconstrained: (p: ProcessMatch) => boolean) =>
    ordinals.filter((j) => unconstrained(rules[j]!.process!));

  // path: executables found on this host whose real path a rule's glob matches
  const path = field(wildWhere((p) => !p.path));
  const exe = universe.executables
    .map((e) => ({
      ...e,
      cls: path.of(
        ordinals.filter((j) => rules[j]!.process!.path?.some((g) => globMatch(g, e.path))),
      ),
    }))
    .filter((e) => e.cls !== 0)
    .map(({ dev, ino, cls }) => ({ dev, ino, cls }));

  // user: uids written as numbers, and names resolved through /etc/passwd
  const user = field(wildWhere((p) => !p.user));
  const uidsOf = (p: ProcessMatch): number[] => {
    const { uids, names } = splitUsers(p.user ?? []);
    return [...uids, ...names.flatMap((n) => universe.users.get(n) ?? [])];
  };
  const named = [...new Set(rules.flatMap((r) => uidsOf(r.process!)))];
  const uid = named
    .map((u) => ({
      uid: u,
      cls: user.of(ordinals.filter((j) => uidsOf(rules[j]!.process!).includes(u))),
    }))
    .filter((u) => u.cls !== 0);

  // cgroup and container: every cgroup directory, by id
  const cg = field(wildWhere((p) => !p.cgroup && !p.container));
  const cgroup = universe.cgroups
    .map((c) => ({
      id: c.id,
      cls: cg.of(
        ordinals.filter((j) => {
          const p = rules[j]!.process!;
          return (p.cgroup || p.container) && cgroupMatches(p, c);
        }),
      ),
    }))
    .filter((c) => c.cls !== 0);

  // name: comm ranges swept into pieces, each piece's class, then LPM prefixes
  const name = field(wildWhere((p) => !p.name));
  const ranges = ordinals.map((j) =>
    (rules[j]!.process!.name ?? []).flatMap((n) => {
      const range = commRange(n);
      return range ? [range] : [];
    }),
  );
  const bounds = new Set<bigint>([0n, COMM_END]);
  for (const rs of ranges) for (const [lo, hi] of rs) bounds.add(lo).add(hi);
  const points = [...bounds].sort((x, y) => (x < y ? -1 : x > y ? 1 : 0));
  const starts: number[] = [];
  const classes: number[] = [];
  for (let k = 0; k + 1 < points.length; k++) {
    const at = points[k]!;
    const cls = name.of(ordinals.filter((j) => ranges[j]!.some(([lo, hi]) => lo <= at && at < hi)));
    if (classes.at(-1) === cls) continue;
    starts.push(k);
    classes.push(cls);
  }
  const runs: Runs = {
    size: points.length - 1,
    starts: Float64Array.from(starts),
    classes: Uint32Array.from(classes),
  };
  const comm = lpmEntries6(runs, points, countLpm6(runs, points));

  const a = combine(path.ids.sets, name.ids.sets, "path x name");
  const b = combine(a.ids.sets, user.ids.sets, "(path, name) x user");
  const p = combine(b.ids.sets, cg.ids.sets, "(path, name, user) x cgroup");
  if (p.ids.sets.length > MAX_PROCESS_CLASSES) {
    throw Object.assign(
      new Error(
        `the process rules make ${p.ids.sets.length} process classes (limit ${MAX_PROCESS_CLASSES})`,
      ),
      { code: "EPOLICYSIZE" },
    );
  }
  const classesOf = new Map<number, number[]>();
  rules.forEach((r, j) =>
    classesOf.set(
      r.index,
      p.ids.sets.flatMap((set, cls) => (set.includes(j) ? [cls] : [])),
    ),
  );
  return {
    exe,
    uid,
    cgroup,
    comm,
    nn: name.ids.sets.length,
    nu: user.ids.sets.length,
    nc: cg.ids.sets.length,
    a: a.table,
    b: b.table,
    p: p.table,
    count: p.ids.sets.length,
    classesOf,
  };
}

/** The class of a process, as the kernel computes it (for tests and the TS table walk). */
export function processClass(
  img: ProcessImage,
  keys: { dev: number; ino: bigint; comm: string; uid: number; cgroupId: bigint },
): number {
  const cp = img.exe.find((e) => e.dev === keys.dev && e.ino === keys.ino)?.cls ?? 0;
  const v = commValue(keys.comm);
  let cn = 0;
  let best = -1;
  for (const e of img.comm) {
    let key = 0n;
    for (const byte of e.addr) key = (key << 8n) | BigInt(byte);
    const shift = BigInt(128 - e.prefixlen);
    if (e.prefixlen > best && v >> shift === key >> shift) {
      best = e.prefixlen;
      cn = e.cls;
    }
  }
  const cu = img.uid.find((u) => u.uid === keys.uid)?.cls ?? 0;
  const cc = img.cgroup.find((c) => c.id === keys.cgroupId)?.cls ?? 0;
  const a = img.a[cp * img.nn + cn]!;
  const b = img.b[a * img.nu + cu]!;
  return img.p[b * img.nc + cc]!;
}

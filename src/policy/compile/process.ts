// Process classes for the socket hooks (docs/socket-hooks.md): the rules' `process` and
// `interface` sections, resolved against what exists on this host, become five small key -> class
// tables the kernel reads with the caller's executable inode, comm, uid, cgroup id and the
// interface the route mirror says the destination leaves by, and a chain of combination tables
// that turn those five classes into one class P (four steps, folded into one table while it stays
// small: combineChain). No per-rule loop: at most ten lookups.
//
// A field class is the set of such rules whose constraint on that field the key satisfies (rules
// that do not constrain the field are in every class of it). Class 0 of every field is the set of
// keys no pattern names (a kernel miss). P is the intersection of the five sets: the rules whose
// whole process and interface sections the connection matches.

import type { InterfaceMatch, PolicyModel, ProcessMatch, Rule } from "../../config/model.ts";
import type { BuiltImage, LinkInfo } from "../../route/index.ts";
import type { ContainerFacts } from "../../attribution/types.ts";
import { globMatch } from "../glob.ts";
import { ruleUsesNames } from "../uses-names.ts";
import { relayRule } from "../layer7-support.ts";
import { containerIdMatch, imageMatch, inCgroup, splitUsers } from "../match-context.ts";
import type { Runs } from "./classes.ts";
import type { LpmEntry } from "./image.ts";
import { countLpm6, lpmEntries6 } from "./lpm.ts";
import { withRedirects } from "./redirect.ts";
import { withImplicitRules } from "../implicit-rules.ts";

/** What is on this host now, for the kernel's keys (src/host/process-universe.ts reads it). */
export interface ProcessUniverse {
  /**
   * Executables some rule's path glob may name, as the kernel identifies them: `dev` in its
   * encoding (MKDEV), `gen` the inode's generation (GEN_NONE: the inode has none; 0 or absent:
   * not known, and the kernel matches the file by inode and device alone).
   */
  executables: { dev: number; ino: bigint; gen?: number; path: string }[];
  /** User name -> uid (/etc/passwd). */
  users: Map<string, number>;
  /** Every cgroup directory, with its container if it is one's (none read when no rule names a
   * cgroup or a container). */
  cgroups: { id: bigint; path: string; container: ContainerFacts | null }[];
  /** The route mirror (src/route): interfaces and the routes to them. */
  routes: BuiltImage;
}

export interface ProcessImage {
  exe: { dev: number; ino: bigint; gen: number; cls: number }[];
  uid: { uid: number; cls: number }[];
  cgroup: { id: bigint; cls: number }[];
  /** comm (16 bytes, NUL padded) as a 128-bit LPM key: exact names and "prefix*". */
  comm: LpmEntry[];
  /** Class counts of the name, user and cgroup fields (the path's is the first factor). */
  nn: number;
  nu: number;
  nc: number;
  /** Route mirror: destination (v4 mapped) -> the interface's ifindex (0: no route, reject). */
  route: LpmEntry[];
  iface: { ifindex: number; cls: number }[];
  ni: number;
  /** Macvlans by their lower device and MAC address: a new connection's frame with one's address
   * (its destination arriving, its source leaving) is judged by the macvlan (`upper`). */
  stacked: { ifindex: number; mac: string; upper: number }[];
  /** Some rule judging outgoing connections has an `interface` section: the kernel checks the
   * real interface after routing. */
  interfaces: boolean;
  /** A[path * nn + name] -> a; B[a * nu + user] -> b; C[b * nc + cgroup] -> c;
   * D[c * ni + interface] -> the class P, less the steps folded into the next (`folds`). */
  a: Uint32Array;
  b: Uint32Array;
  p: Uint32Array;
  d: Uint32Array;
  /** Bit s (0..2): step s's table (A, B or C) is not looked up, its index goes on into step
   * s + 1's; bit 3 is never set (D gives the class). */
  folds: number;
  /** Number of process classes (P values). */
  count: number;
  /** Policy rule index -> the process classes its process and interface sections match, and
   * for a process rule the any-process classes of the interface classes it matches. */
  classesOf: Map<number, number[]>;
}

/**
 * The generation of an inode that has none (bpf/include/exe_file.h MOAT_GEN_NONE): the kernel
 * never keys an executable with generation 0, which means "not known" in the path table.
 */
export const GEN_NONE = 0xffffffff;

/**
 * The path table's keys for an executable: its own, and for a known generation a copy without
 * one, which the kernel's records from before it recorded generations look up (bpf/include/
 * classify.h exe_class). A file given the number of a freed one has a generation of its own, so
 * neither key is its.
 */
function exeKeys<E extends { gen?: number }>(e: E): (E & { gen: number })[] {
  const gen = e.gen ?? 0;
  return gen === 0 || gen === GEN_NONE
    ? [{ ...e, gen }]
    : [
        { ...e, gen },
        { ...e, gen: GEN_NONE },
      ];
}

/** P travels in the client-port slot (docs/socket-hooks.md): 65,536 values. */
const CLASS_SPACE = 65_536;
/**
 * The classes at the top of P's space, one an interface class `ci` (MOAT_ANY_PROCESS - ci), that
 * every process rule of that interface class matches and no process has: XDP asks the socket image
 * with the one of the packet's interface whether a process rule may decide an incoming connection.
 */
export const ANY_PROCESS_CLASS = 65535;
const MAX_TABLE = 4_000_000;
/** Entries of a combination table that folds steps (combineChain): 256 KB a table at most. */
const FOLD_LIMIT = 65_536;

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
const utf8 = new TextEncoder();

/** comm bytes as a 128-bit number, NUL padded (what bpf_get_current_comm() writes). */
function commValue(text: string): bigint {
  const bytes = utf8.encode(text);
  let v = 0n;
  for (let i = 0; i < COMM_BYTES; i++) v = (v << 8n) | BigInt(bytes[i] ?? 0);
  return v;
}

/** A name pattern as a range of comm values; null for patterns the kernel cannot match. */
export function commRange(pattern: string): [bigint, bigint] | null {
  const star = pattern.endsWith("*") ? pattern.slice(0, -1) : null;
  const literal = star ?? pattern;
  const length = utf8.encode(literal).length;
  if (/[*?]/.test(literal) || length > COMM_BYTES - 1) return null;
  const lo = commValue(literal);
  const free = BigInt(8 * (COMM_BYTES - length));
  return [lo, star === null ? lo + 1n : lo + (1n << free)];
}

export function cgroupMatches(rule: ProcessMatch, c: ProcessUniverse["cgroups"][number]): boolean {
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

/** Every pair's intersection, x's index major: the sets of a product of two fields. */
function product(x: number[][], y: number[][]): number[][] {
  return x.flatMap((xs) => y.map((ys) => intersect(xs, ys)));
}

/**
 * The combination chain: classes entering it (the path's), then four fields, each step one
 * table [in * n + field] -> the next classes. A step is folded into the next when the next
 * step's table, indexed [(in * n + field) * n' + field'] directly, would have at most `foldLimit`
 * entries: one lookup fewer a connect(). `folds` has bit s set
 * for each step s so folded; its table is a one-entry placeholder.
 */
function combineChain(
  foldLimit: number,
  first: number[][],
  steps: { sets: number[][]; what: string }[],
): { tables: Uint32Array[]; folds: number; classes: number[][] } {
  const tables: Uint32Array[] = [];
  let folds = 0;
  let into = first;
  let fields: number[][] | null = null;
  steps.forEach((step, s) => {
    const sets: number[][] = fields ? product(fields, step.sets) : step.sets;
    const next = steps[s + 1];
    if (next && into.length * sets.length * next.sets.length <= foldLimit) {
      fields = sets;
      folds |= 1 << s;
      tables.push(new Uint32Array(1));
      return;
    }
    const c = combine(into, sets, step.what);
    tables.push(c.table);
    into = c.ids.sets;
    fields = null;
  });
  return { tables, folds, classes: into };
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

/**
 * Rules the socket hooks judge by who and where: a process or an interface section, or names
 * (hostname entries, layer7.dns.name), which only hold for the identity that looked them up, or
 * L7 rules (let through at connect() for moat's relay).
 */
export const socketRule = (r: Rule): boolean =>
  !!(r.process || r.interface) || ruleUsesNames(r) || relayRule(r);

/**
 * What a policy's socket rules ask of the host: the user names and executable globs they name,
 * whether one names an interface (then the links and routes are read) and whether one names a
 * cgroup or a container (then every cgroup is read: one coming or going changes the policy only
 * then). Plain data, so a thread compiling the policy can ask the thread that knows the host.
 */
export interface UniverseQuery {
  users: string[];
  paths: string[];
  routes: boolean;
  cgroups: boolean;
}

export function universeQuery(model: PolicyModel): UniverseQuery {
  // moat's own rules too: a local decision names the executable it was made for
  const rules = withRedirects(withImplicitRules(model)).rules.filter(socketRule);
  // each once: thousands of rules name the same few users and executables
  const users = new Set<string>();
  const paths = new Set<string>();
  for (const r of rules) {
    for (const u of r.process?.user ?? []) if (typeof u === "string") users.add(u);
    for (const p of r.process?.path ?? []) paths.add(p);
  }
  return {
    users: [...users],
    paths: [...paths],
    routes: rules.some((r) => r.interface),
    // `l7:quic` names attach.cgroup for an L7 rule without a process section
    cgroups: rules.some((r) => r.process?.cgroup || r.process?.container),
  };
}

const ANY_PROCESS: ProcessMatch = { pos: { file: "", line: 0, col: 0, path: "" } };

function interfaceMatches(
  m: InterfaceMatch | undefined,
  link: { ifname: string; tunnel: boolean },
): boolean {
  if (!m) return true;
  if (m.name && !m.name.some((g) => globMatch(g, link.ifname))) return false;
  return m.tunnel === undefined || m.tunnel === link.tunnel;
}

/** The macvlans whose lower device the mirror knows, by the lower's ifindex and their MAC. */
function stackedLinks(links: readonly LinkInfo[]): ProcessImage["stacked"] {
  const byName = new Map(links.map((l) => [l.ifname, l]));
  return links.flatMap((l) => {
    const lower = l.lower ? byName.get(l.lower) : undefined;
    return lower && l.mac ? [{ ifindex: lower.ifindex, mac: l.mac, upper: l.ifindex }] : [];
  });
}

/** The mirror's routes as 128-bit LPM entries (IPv4 mapped), valued by ifindex. */
function routeEntries(routes: BuiltImage): LpmEntry[] {
  const v4 = routes.image.v4.map((e) => {
    const addr = new Uint8Array(16);
    addr[10] = 0xff;
    addr[11] = 0xff;
    addr.set(e.addr, 12);
    return { prefixlen: 96 + e.prefixlen, addr, cls: e.reject ? 0 : e.ifindex };
  });
  const v6 = routes.image.v6.map((e) => ({
    prefixlen: e.prefixlen,
    addr: e.addr,
    cls: e.reject ? 0 : e.ifindex,
  }));
  return [...v4, ...v6];
}

/** The socket rules' classes on this host; null when no rule names a process or interface. */
export function compileProcess(
  model: PolicyModel,
  universe: ProcessUniverse,
  foldLimit = FOLD_LIMIT,
): ProcessImage | null {
  const rules = model.rules.filter(socketRule);
  if (rules.length === 0) return null;
  const ordinals = rules.map((_, j) => j);
  const sectionOf = (j: number): ProcessMatch => rules[j]!.process ?? ANY_PROCESS;
  const wildWhere = (unconstrained: (p: ProcessMatch) => boolean) =>
    ordinals.filter((j) => unconstrained(sectionOf(j)));

  // path: executables found on this host whose real path a rule's glob matches
  const path = field(wildWhere((p) => !p.path));
  const exe = universe.executables
    .map((e) => ({
      ...e,
      cls: path.of(ordinals.filter((j) => sectionOf(j).path?.some((g) => globMatch(g, e.path)))),
    }))
    .filter((e) => e.cls !== 0)
    .flatMap(({ dev, ino, gen, cls }) => exeKeys({ dev, ino, gen, cls }));

  // user: uids written as numbers, and names resolved through /etc/passwd
  const user = field(wildWhere((p) => !p.user));
  const uidsOf = (p: ProcessMatch): number[] => {
    const { uids, names } = splitUsers(p.user ?? []);
    return [...uids, ...names.flatMap((n) => universe.users.get(n) ?? [])];
  };
  const named = [...new Set(ordinals.flatMap((j) => uidsOf(sectionOf(j))))];
  const uid = named
    .map((u) => ({
      uid: u,
      cls: user.of(ordinals.filter((j) => uidsOf(sectionOf(j)).includes(u))),
    }))
    .filter((u) => u.cls !== 0);

  // cgroup and container: every cgroup directory, by id
  const cg = field(wildWhere((p) => !p.cgroup && !p.container));
  const cgroup = universe.cgroups
    .map((c) => ({
      id: c.id,
      cls: cg.of(
        ordinals.filter((j) => {
          const p = sectionOf(j);
          return (p.cgroup || p.container) && cgroupMatches(p, c);
        }),
      ),
    }))
    .filter((c) => c.cls !== 0);

  // name: comm ranges swept into pieces, each piece's class, then LPM prefixes
  const name = field(wildWhere((p) => !p.name));
  const ranges = ordinals.map((j) =>
    (sectionOf(j).name ?? []).flatMap((n) => {
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

  // interface: every interface the route mirror knows, by ifindex; a bridge's or bond's port as
  // its master (the interface the host's IP layer sees), tunnelled if the port is a tunnel
  const ifc = field(ordinals.filter((j) => !rules[j]!.interface));
  const byName = new Map(universe.routes.links.map((l) => [l.ifname, l]));
  const iface = universe.routes.links
    .map((l) => {
      const master = l.master ? byName.get(l.master) : undefined;
      const seen = master ? { ifname: master.ifname, tunnel: master.tunnel || l.tunnel } : l;
      return {
        ifindex: l.ifindex,
        cls: ifc.of(
          ordinals.filter(
            (j) => rules[j]!.interface && interfaceMatches(rules[j]!.interface, seen),
          ),
        ),
      };
    })
    .filter((i) => i.cls !== 0);

  const chain = combineChain(foldLimit, path.ids.sets, [
    { sets: name.ids.sets, what: "path x name" },
    { sets: user.ids.sets, what: "(path, name) x user" },
    { sets: cg.ids.sets, what: "(path, name, user) x cgroup" },
    { sets: ifc.ids.sets, what: "process x interface" },
  ]);
  const [a, b, p, d] = chain.tables as [Uint32Array, Uint32Array, Uint32Array, Uint32Array];
  const processClasses = chain.classes;
  const interfaceClasses = ifc.ids.sets;
  const limit = CLASS_SPACE - interfaceClasses.length;
  if (processClasses.length > limit) {
    throw Object.assign(
      new Error(
        `the process and interface rules make ${processClasses.length} classes (limit ${limit})`,
      ),
      { code: "EPOLICYSIZE" },
    );
  }
  const classesOf = new Map<number, number[]>();
  rules.forEach((r, j) => {
    const classes = processClasses.flatMap((set, cls) => (set.includes(j) ? [cls] : []));
    // the any-process classes of the interface classes the rule matches
    if (r.process)
      interfaceClasses.forEach((set, ci) => {
        if (set.includes(j)) classes.push(ANY_PROCESS_CLASS - ci);
      });
    classesOf.set(r.index, classes);
  });
  return {
    exe,
    uid,
    cgroup,
    comm,
    nn: name.ids.sets.length,
    nu: user.ids.sets.length,
    nc: cg.ids.sets.length,
    route: routeEntries(universe.routes),
    iface,
    ni: ifc.ids.sets.length,
    stacked: stackedLinks(universe.routes.links),
    interfaces: rules.some((r) => r.interface && r.direction !== "ingress"),
    a,
    b,
    p,
    d,
    folds: chain.folds,
    count: processClasses.length,
    classesOf,
  };
}

/** Longest-prefix match of a 128-bit value over LPM entries; 0 on a miss. */
function lpm128(entries: LpmEntry[], v: bigint): number {
  let cls = 0;
  let best = -1;
  for (const e of entries) {
    let key = 0n;
    for (const byte of e.addr) key = (key << 8n) | BigInt(byte);
    const shift = BigInt(128 - e.prefixlen);
    if (e.prefixlen > best && v >> shift === key >> shift) {
      best = e.prefixlen;
      cls = e.cls;
    }
  }
  return cls;
}

/** The path class of an executable, as exe_class() in bpf/include/classify.h finds it. */
function exeClass(img: ProcessImage, dev: number, ino: bigint, gen: number): number {
  const find = (g: number) =>
    img.exe.find((e) => e.dev === dev && e.ino === ino && e.gen === g)?.cls ?? 0;
  return find(gen || GEN_NONE) || find(0);
}

/** The class of a process, as the kernel computes it (for tests and the TS table walk). */
export function processClass(
  img: ProcessImage,
  keys: { dev: number; ino: bigint; gen?: number; comm: string; uid: number; cgroupId: bigint },
  /** The destination, 16 bytes (IPv4 mapped); none: no route. */
  destination?: Uint8Array,
): number {
  const cp = exeClass(img, keys.dev, keys.ino, keys.gen ?? 0);
  const cn = lpm128(img.comm, commValue(keys.comm));
  const cu = img.uid.find((u) => u.uid === keys.uid)?.cls ?? 0;
  const cc = img.cgroup.find((c) => c.id === keys.cgroupId)?.cls ?? 0;
  let dst = 0n;
  for (const byte of destination ?? []) dst = (dst << 8n) | BigInt(byte);
  const ifindex = destination ? lpm128(img.route, dst) : 0;
  const ci = img.iface.find((i) => i.ifindex === ifindex)?.cls ?? 0;
  const step = (table: Uint32Array, s: number, index: number) =>
    img.folds & (1 << s) ? index : table[index]!;
  const a = step(img.a, 0, cp * img.nn + cn);
  const b = step(img.b, 1, a * img.nu + cu);
  const c = step(img.p, 2, b * img.nc + cc);
  return img.d[c * img.ni + ci]!;
}

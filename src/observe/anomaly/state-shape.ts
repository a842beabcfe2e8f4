// What a state file must hold before the engine takes it (state-file.ts): every field the
// detectors read, of its type, and no collection past the bound the engine keeps it to. A file
// moat wrote always passes; a damaged one (or one of another layout) is refused as a whole with
// the first field that is wrong, instead of failing later on every flow record of an identity.
import { MAX_IDENTITIES, MAX_RECENT, MAX_REPORTED, type AnomalyDetector } from "./detector.ts";
import { MAX_SERIES, KEEP as KEEP_CONNECTIONS } from "./beacon.ts";
import { MAX_DESTINATIONS } from "./new-destination.ts";
import { MAX_DNS_DOMAINS } from "./dns-oddities.ts";
import { Ewma } from "./robust.ts";

/** The state as the file holds it, checked. */
export interface SavedState {
  profiles: AnomalyDetector["profiles"];
  accepted: AnomalyDetector["accepted"];
  reportedAt: AnomalyDetector["reportedAt"];
  recent: AnomalyDetector["recent"];
}

const KINDS = ["new_destination", "volume", "beacon", "dns_entropy", "dns_nxdomain"];

/** A value in the file and where it is; the place is spelled out only when it is wrong. */
class Shape {
  readonly v: unknown;
  readonly #parent: Shape | null;
  /** A field's name, a list's index ("[3]"), or a map's key. */
  readonly #step: string;
  readonly #key: boolean;
  constructor(parent: Shape | null, step: string, v: unknown, key = false) {
    this.#parent = parent;
    this.#step = step;
    this.#key = key;
    this.v = v;
  }
  get at(): string {
    const up = this.#parent?.at ?? "";
    if (this.#key) return `${up}[${JSON.stringify(this.#step)}]`;
    return up && !this.#step.startsWith("[") ? `${up}.${this.#step}` : up + this.#step;
  }
  fail(what: string): never {
    throw new Error(`${this.at || "the file"} ${what}`);
  }
  field(name: string): Shape {
    const o = this.object();
    return new Shape(this, name, o[name]);
  }
  object(): Record<string, unknown> {
    if (!this.v || typeof this.v !== "object" || Array.isArray(this.v))
      this.fail("is not an object");
    return this.v as Record<string, unknown>;
  }
  number(): number {
    if (typeof this.v !== "number" || !Number.isFinite(this.v)) this.fail("is not a number");
    return this.v as number;
  }
  string(): string {
    if (typeof this.v !== "string") this.fail("is not a string");
    return this.v as string;
  }
  boolean(): void {
    if (typeof this.v !== "boolean") this.fail("is not true or false");
  }
  list(max = Infinity): Shape[] {
    if (!Array.isArray(this.v)) this.fail("is not a list");
    const xs = this.v as unknown[];
    if (xs.length > max) this.fail(`has ${xs.length} entries, more than ${max}`);
    return xs.map((x, i) => new Shape(this, `[${i}]`, x));
  }
  /** A map (revived from its tagged form): its values, each checked by `value`. */
  map(max: number, value: (s: Shape) => void): void {
    if (!(this.v instanceof Map)) this.fail("is not a map");
    const m = this.v as Map<unknown, unknown>;
    if (m.size > max) this.fail(`has ${m.size} entries, more than ${max}`);
    for (const [k, v] of m) {
      if (typeof k !== "string") this.fail("has a key that is not a string");
      value(new Shape(this, k, v, true));
    }
  }
  nullOr(check: (s: Shape) => void): void {
    if (this.v !== null) check(this);
  }
}

/** A list of `type` (a loop, not a Shape an element: a profile holds tens of thousands). */
function listOf(s: Shape, type: "number" | "string", max = Infinity): void {
  if (!Array.isArray(s.v)) s.fail("is not a list");
  const xs = s.v as unknown[];
  if (xs.length > max) s.fail(`has ${xs.length} entries, more than ${max}`);
  for (let i = 0; i < xs.length; i++) {
    const x = xs[i];
    if (typeof x !== type || (type === "number" && !Number.isFinite(x)))
      new Shape(s, `[${i}]`, x).fail(`is not a ${type}`);
  }
}
const numbers = (s: Shape, max?: number) => listOf(s, "number", max);
const strings = (s: Shape, max?: number) => listOf(s, "string", max);

function identity(s: Shape): void {
  s.field("exe").string();
  s.field("user").number();
  s.field("cgroup").string();
  s.field("container").string();
}

function observation(s: Shape): void {
  for (const f of ["timeMs", "port", "bytes", "durationMs"]) s.field(f).number();
  s.field("remote").string();
  s.field("protocol").string();
  const name = s.field("name");
  if (name.v !== undefined) name.string();
}

function bucket(s: Shape): void {
  for (const f of ["start", "connections", "bytes", "durationMax"]) s.field(f).number();
  strings(s.field("reported"));
  s.field("top").nullOr(observation);
}

function volume(s: Shape): void {
  for (const h of s.field("hours").list(14 * 24)) {
    for (const f of ["connections", "bytes", "durationMax"]) h.field(f).number();
  }
  numbers(s.field("days"), 28);
  for (const f of ["hour", "day", "minute"]) s.field(f).nullOr(bucket);
  const m = s.field("perMinute");
  if (!(m.v instanceof Ewma) || ![m.v.alpha, m.v.mean, m.v.variance, m.v.samples].every(isFinite))
    m.fail("is not a streaming mean");
  for (const [metric, b] of Object.entries(s.field("cache").object())) {
    const base = new Shape(s.field("cache"), metric, b);
    for (const f of ["median", "p99", "spread", "samples"]) base.field(f).number();
  }
}

function series(s: Shape): void {
  numbers(s.field("starts"), KEEP_CONNECTIONS);
  numbers(s.field("sizes"), KEEP_CONNECTIONS);
  if ((s.field("starts").v as number[]).length !== (s.field("sizes").v as number[]).length)
    s.fail("has starts and sizes of different lengths");
  for (const f of ["firstMs", "lastMs", "count", "judgeAt"]) s.field(f).number();
  s.field("irregular").boolean();
}

function dns(s: Shape): void {
  for (const f of ["windowStart", "nx"]) s.field(f).number();
  s.field("random").map(MAX_DNS_DOMAINS, (names) => {
    if (!(names.v instanceof Set) || ![...names.v].every((n) => typeof n === "string"))
      names.fail("is not a set of names");
  });
  strings(s.field("nxNames"));
  numbers(s.field("pastNx"));
  strings(s.field("reported"));
}

function profile(s: Shape): void {
  identity(s.field("identity"));
  s.field("firstMs").number();
  s.field("lastMs").number();
  const d = s.field("destinations");
  d.field("known").map(MAX_DESTINATIONS, (t) => t.number());
  for (const n of d.field("novelty").list()) {
    n.field("day").number();
    n.field("count").number();
  }
  volume(s.field("volume"));
  s.field("beacons").map(MAX_SERIES, series);
  dns(s.field("dns"));
}

function facts(s: Shape): void {
  for (const f of ["id", "key", "summary", "metric"]) s.field(f).string();
  if (!KINDS.includes(s.field("kind").string())) s.field("kind").fail("is not an anomaly kind");
  identity(s.field("identity"));
  s.field("value").number();
  s.field("threshold").number();
  s.field("baseline").object();
  s.field("samples").list();
}

/** Where an anomaly happened: a flow's connection or a query event, as far as the API reads it. */
function connection(s: Shape): void {
  s.field("local").object();
  s.field("remote").object();
}

function recent(s: Shape): void {
  s.field("time").string();
  facts(s.field("facts"));
  s.field("connection").nullOr(connection);
  s.field("query").nullOr(connection);
  s.field("accepted").boolean();
}

function acceptance(s: Shape): void {
  for (const f of ["id", "key", "at", "by"]) s.field(f).string();
  if (!KINDS.includes(s.field("kind").string())) s.field("kind").fail("is not an anomaly kind");
  identity(s.field("identity"));
  s.field("value").number();
}

/** The state in `saved` (the parsed file), checked; throws naming the first field that is wrong. */
export function checkedState(saved: unknown): SavedState {
  const s = new Shape(null, "", saved);
  s.field("profiles").map(MAX_IDENTITIES, profile);
  s.field("accepted").map(Infinity, acceptance);
  s.field("reportedAt").map(MAX_REPORTED, (t) => t.number());
  s.field("recent").list(MAX_RECENT).forEach(recent);
  const o = s.object();
  return {
    profiles: o.profiles as SavedState["profiles"],
    accepted: o.accepted as SavedState["accepted"],
    reportedAt: o.reportedAt as SavedState["reportedAt"],
    recent: o.recent as SavedState["recent"],
  };
}

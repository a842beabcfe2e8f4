// What-if replay: stored events run one at a time through a draft policy with the reference
// evaluator (the daemon's and the playground's `evaluate`), each verdict compared with the one
// recorded (or the running policy's), the changes grouped by process and remote. Events are fed
// as they are read (the daemon streams them from SQLite), so memory holds the groups and the
// connection ids seen, never the events. Pure: no host access.
import type { PolicyModel } from "../../config/model.ts";
import { evaluate, type Evaluation } from "../evaluator.ts";
import { FactsError } from "../facts.ts";
import {
  CHANGES,
  type Change,
  type ChangeList,
  type Judged,
  type ReplayGroup,
  type ReplayReport,
  type ReplaySample,
  type Verdict,
} from "./report.ts";
import { storedFacts, type StoredEvent } from "./stored-facts.ts";

export interface ReplayOptions {
  draft: PolicyModel;
  /** Compare with this policy's verdicts (the running one); absent: the verdicts recorded. */
  running?: PolicyModel;
  /** Groups listed per change (default 50); the rest are counted. */
  groups?: number;
  /** Sample events kept per group (default 3). */
  samples?: number;
}

/** Groups held per change while replaying: a bound on memory, whatever the history holds. */
const GROUPS_HELD = 2000;

type Outcome =
  { verdict: Verdict; rule: string; reason: string } | { needs: string[]; reason: string };

/**
 * A decision, or a deferral whose possible decisions all give one verdict (then the unknown fact
 * cannot change it); else what the facts lack.
 */
function outcomeOf(e: Evaluation): Outcome {
  if (e.verdict !== "deferred") return { verdict: e.verdict, rule: e.rule, reason: e.reason };
  const verdicts = new Set(e.possible.map((d) => d.verdict));
  const [only] = verdicts;
  if (verdicts.size === 1 && only)
    return {
      verdict: only,
      rule: [...new Set(e.possible.map((d) => d.rule))].join(" or "),
      reason: e.reason,
    };
  return { needs: e.needs, reason: e.reason };
}

const isVerdict = (v: string): v is Verdict =>
  v === "allowed" || v === "blocked" || v === "detected";

const endpoint = (ip: string, port: number | undefined) =>
  port === undefined ? ip : `${ip.includes(":") ? `[${ip}]` : ip}:${port}`;

function identity(e: StoredEvent): string {
  const p = e.process;
  const container = p?.container?.name;
  if (container) return p?.name ? `${container}/${p.name}` : container;
  return p?.name ?? "-";
}

export class Replay {
  #options: ReplayOptions;
  #seen = new Set<string>();
  #scanned = 0;
  #replayed = 0;
  #skipped = { repeats: 0, dns: 0, summaries: 0, unreadable: 0 };
  #unchanged = 0;
  #undecided = { count: 0, needs: {} as Record<string, number>, samples: [] as ReplaySample[] };
  #changes = new Map<Change, { count: number; groups: Map<string, ReplayGroup>; unheld: number }>(
    CHANGES.map((c) => [c, { count: 0, groups: new Map(), unheld: 0 }]),
  );

  constructor(options: ReplayOptions) {
    this.#options = options;
  }

  get #samples(): number {
    return this.#options.samples ?? 3;
  }

  /** Replays one stored event (newest first: a connection's latest event speaks for it). */
  add(e: StoredEvent): void {
    this.#scanned++;
    // a summary of several connections counts as that many; reported ones have events of their own
    let weight = 1;
    // an anomaly or a changed executable is about flows that have records of their own
    if (e.type === "anomaly" || e.type === "exe_changed") {
      this.#skipped.repeats++;
      return;
    }
    if (e.flow) {
      if (e.verdict !== "allowed" || !(e.flow.connections >= 1)) {
        this.#skipped.summaries++;
        return;
      }
      weight = e.flow.connections;
    }
    if (e.connection) {
      if (this.#seen.has(e.connection)) {
        this.#skipped.repeats++;
        return;
      }
      this.#seen.add(e.connection);
    }
    const facts = storedFacts(e);
    if (facts === "dns") {
      this.#skipped.dns++;
      return;
    }
    let now: Outcome;
    let was: Judged | undefined;
    try {
      now = outcomeOf(evaluate(this.#options.draft, facts));
      if (this.#options.running) {
        const before = outcomeOf(evaluate(this.#options.running, facts));
        // what the running policy cannot decide from the stored facts, the kernel did: recorded
        if ("verdict" in before) was = { verdict: before.verdict, rule: before.rule };
      }
    } catch (err) {
      if (!(err instanceof FactsError)) throw err;
      this.#skipped.unreadable++;
      return;
    }
    if (!was) {
      if (!isVerdict(e.verdict)) {
        this.#skipped.unreadable++;
        return;
      }
      was = { verdict: e.verdict, rule: e.rule };
    }
    this.#replayed += weight;
    if (!("verdict" in now)) {
      const u = this.#undecided;
      u.count += weight;
      for (const need of now.needs) u.needs[need] = (u.needs[need] ?? 0) + weight;
      if (u.samples.length < this.#samples)
        u.samples.push(sample(e, was, { verdict: "undecided", rule: "", reason: now.reason }));
      return;
    }
    if (now.verdict === was.verdict) {
      this.#unchanged += weight;
      return;
    }
    this.#change(now.verdict, e, was, now, weight);
  }

  #change(
    change: Change,
    e: StoredEvent,
    was: Judged,
    now: { verdict: Verdict; rule: string; reason: string },
    weight: number,
  ): void {
    const list = this.#changes.get(change);
    if (!list) return;
    list.count += weight;
    const ingress = e.direction === "ingress";
    const port = (ingress ? e.local.port : e.remote.port) ?? null;
    const remote = e.remote.names?.[0] ?? e.remote.ip;
    const process = identity(e);
    const protocol = String(e.protocol);
    const key = `${e.direction}\0${process}\0${remote}\0${port}\0${protocol}`;
    let group = list.groups.get(key);
    if (!group) {
      if (list.groups.size >= GROUPS_HELD) {
        list.unheld += weight;
        return;
      }
      group = {
        direction: e.direction,
        process,
        remote,
        port,
        protocol,
        count: 0,
        was: {},
        rules: [],
        samples: [],
      };
      list.groups.set(key, group);
    }
    group.count += weight;
    group.was[was.verdict] = (group.was[was.verdict] ?? 0) + weight;
    const rule = group.rules.find((r) => r.rule === now.rule);
    if (rule) rule.count += weight;
    else group.rules.push({ rule: now.rule, count: weight });
    if (group.samples.length < this.#samples) group.samples.push(sample(e, was, now));
  }

  /** What the replay found; `window` says what was asked and what was left unread. */
  report(window: {
    since: string;
    until: string;
    limit: number;
    notScanned: number;
  }): ReplayReport {
    const listed = this.#options.groups ?? 50;
    const changes = {} as Record<Change, ChangeList>;
    for (const [change, list] of this.#changes) {
      const groups = [...list.groups.values()].sort((a, b) => b.count - a.count);
      for (const g of groups) g.rules.sort((a, b) => b.count - a.count);
      const shown = groups.slice(0, listed);
      const inShown = shown.reduce((n, g) => n + g.count, 0);
      changes[change] = { count: list.count, groups: shown, unlisted: list.count - inShown };
    }
    const s = this.#skipped;
    return {
      since: window.since,
      until: window.until,
      baseline: this.#options.running ? "running" : "recorded",
      limit: window.limit,
      scanned: this.#scanned,
      notScanned: window.notScanned,
      replayed: this.#replayed,
      skipped: { ...s },
      unchanged: this.#unchanged,
      undecided: this.#undecided,
      changes,
    };
  }
}

function sample(e: StoredEvent, was: Judged, now: ReplaySample["now"]): ReplaySample {
  const out: ReplaySample = {
    time: e.time,
    type: e.type,
    direction: e.direction,
    protocol: String(e.protocol),
    local: endpoint(e.local.ip, e.local.port),
    remote: endpoint(e.remote.ip, e.remote.port),
    process: e.process?.name ? `${e.process.name} pid ${e.process.pid ?? "?"}` : null,
    was,
    now,
  };
  if (e.id !== undefined) out.id = e.id;
  if (e.remote.names?.length) out.names = e.remote.names;
  return out;
}

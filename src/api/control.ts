// What the API asks of the daemon. The daemon implements it; tests may fake it.
import type { EventSink, SnapshotSource } from "../observe/sink.ts";
import type { SinkOptions } from "../observe/pipeline.ts";
import type { HistoryPage, HistoryQuery } from "../observe/history/query.ts";
import type { ReplayReport } from "../policy/index.ts";
import type { Suggestion } from "../observe/learn/index.ts";
import type { StatsPage, StatsQuery } from "../observe/history/rollup.ts";
import type { Acceptance } from "../observe/anomaly/detector.ts";
import type { MoatEvent } from "../datapath/event.ts";

/** GET /v1/anomalies: the last anomalies reported and what was accepted as normal. */
export interface AnomalyView {
  /** The policy's anomaly.enabled. */
  enabled: boolean;
  /** The last anomalies reported, oldest first, each as its event. */
  anomalies: { accepted: boolean; event: MoatEvent }[];
  accepted: Acceptance[];
}
import type { LocalDecision, ModeDecision } from "../config/index.ts";

/** An unknown connection waiting in the review queue (one per identity and destination). */
export interface ReviewEntry {
  id: string;
  direction: "ingress" | "egress";
  protocol: string;
  remote: { ip: string; names?: string[] };
  /** The server port (tcp, udp). */
  port?: number;
  process: { path: string; name: string; user: number } | null;
  /** What the defaults did: detected (detect mode) or blocked (silent block). */
  verdict: "detected" | "blocked";
  first: string;
  last: string;
  count: number;
}

export interface ReviewView {
  entries: ReviewEntry[];
  /** Connections not queued because the queue was full (kept across restarts with the queue). */
  overflow: number;
  max: number;
}

/** A person's answer to a review queue entry (POST /v1/review/decide). */
export interface ReviewAnswer {
  id: string;
  action: "allow" | "block";
  /** host: its address; domain: the name it was resolved from; wildcard: every name below. */
  scope: "host" | "domain" | "wildcard";
  /** "once", "reboot", "forever" or a duration. */
  lifetime: string;
  /** The name (domain) or pattern (wildcard) to use instead of the one derived from the entry. */
  name?: string;
}

/** A decision to add (POST /v1/decisions): the store gives it its id and times. */
export type DecisionBody = Omit<LocalDecision, "id" | "created" | "expires" | "boot" | "by">;

export interface DecisionsView {
  /** Where moat stores them (null: in memory, gone when the daemon stops). */
  path: string | null;
  decisions: LocalDecision[];
  /** The mode `moat mode` decided, over the policy file's (absent: the file's mode runs). */
  mode?: ModeDecision;
}

/** A decision made (or removed) and the generation that carries it out. */
export type DecisionOutcome =
  { ok: true; decision: LocalDecision; generation: number } | { ok: false; errors: string[] };

/** A redirected client's original destination, for its proxy (docs/redirect.md). */
export interface OriginalView {
  original: { ip: string; port: number };
  protocol: "tcp" | "udp";
  /** The redirect's name. */
  redirect: string;
  /** Where the kernel sent the client. */
  target: { ip: string; port: number };
  process: { pid: number; name: string; user: number } | null;
}

export interface PolicyView {
  path: string;
  /** The running policy's text, as applied. */
  text: string;
  /** sha256 of `text`, hex. */
  hash: string;
  generation: number;
  mode: "detect" | "prevent";
  /** A policy applied on trial (`moat policy apply --confirm`): when it reverts unless confirmed. */
  trial?: TrialView;
  /**
   * What each rule does, in order, then the defaults as `defaults.ingress` and `defaults.egress`
   * (the names GET /v1/rules counts them under); `verdict` is what its matches are reported as.
   */
  rules?: RuleView[];
}

export interface RuleView {
  name: string;
  action: "allow" | "block";
  mode: "detect" | "prevent";
  verdict: "allowed" | "blocked" | "detected";
  /** The rule's line in the policy file (absent for the defaults). */
  line?: number;
}

/** A policy on trial: it reverts to the one before it at `revertAt` unless confirmed. */
export interface TrialView {
  /** ISO time. */
  revertAt: string;
  /** Who applied it. */
  by: string;
  /** sha256 of the policy it reverts to (the one running before it). */
  previousHash: string;
}

export interface ValidateResult {
  ok: boolean;
  /** FILE:LINE:COL path: message, the way `moat check` prints them. */
  errors: string[];
  warnings: string[];
}

export interface ApplyOutcome {
  ok: boolean;
  generation: number;
  errors: string[];
  /** Applied on trial: when it reverts unless confirmed (ISO time). */
  revertAt?: string;
}

/** How a policy is applied: on trial for `confirmMs` (reverts by itself unless confirmed). */
export interface ApplyOptions {
  confirmMs?: number;
}

/** Whose a history job (replay, suggest) is, and its caller hanging up (the job is dropped). */
export interface JobContext {
  /** Jobs are bounded per owner: a token's name, or "unix" for root. */
  owner: string;
  signal: AbortSignal;
}

/** A draft policy to replay over the stored events of a time window (POST /v1/policy/replay). */
export interface ReplayRequest {
  text: string;
  /** The window, ms since the epoch. */
  since: number;
  until: number;
  /** Events read at most, newest first. */
  limit: number;
  /** Compare with the verdicts recorded, or with the running policy's. */
  baseline: "recorded" | "running";
  /**
   * The draft may read set files (`file:`): only for callers that may apply a policy, since a
   * replay's answer would tell of a file's entries.
   */
  setFiles: boolean;
}

export type ReplayOutcome =
  | {
      ok: true;
      report: ReplayReport;
      warnings: string[];
      /** What applying the draft would change in the running policy (policyChanges). */
      policyChanges: string[];
    }
  /** The draft is refused: FILE:LINE:COL path: message, as `moat check` prints them. */
  | { ok: false; errors: string[]; warnings: string[] };

/** POST /v1/policy/replay's answer: the report, the draft's warnings, what applying it changes. */
export type ReplayAnswer = ReplayReport & { warnings: string[]; policyChanges: string[] };

/** What to suggest (GET and POST /v1/policy/suggest, `moat suggest`). */
export interface SuggestApiRequest {
  /** A policy file's text; absent: the running policy's. */
  text?: string;
  /** The name the diff gives the file (default: the daemon's policy file). */
  fileName?: string;
  /** The window learnt from, ms since the epoch. */
  since: number;
  now: number;
  /** Promote proposed rules with enough clean days instead of proposing new ones. */
  promote: boolean;
  stableSeconds?: number;
  siblings?: number;
  addresses?: number;
  cleanDays?: number;
  /** The text may read set files (callers with the policy scope). */
  setFiles: boolean;
}

export type SuggestOutcome =
  | {
      ok: true;
      suggestion: Suggestion;
      /** The policy's warnings, as `moat check` prints them. */
      warnings: string[];
      /** Errors `moat check` finds in the suggested text (none expected; applying it would fail). */
      problems: string[];
    }
  /** The given policy text is refused. */
  | { ok: false; errors: string[]; warnings: string[] };

/** GET /v1/policy/suggest's answer. */
export type SuggestAnswer = Suggestion & { warnings: string[]; problems: string[] };

/** A login to this host's sshd, as moat ssh-authkeys asks about it. */
export interface SshLoginQuery {
  user: string;
  client: { ip: string; port?: number };
  server?: { ip: string; port: number };
  /** The key sshd was offered ("type base64"); absent: every key the policy names. */
  key?: string;
}

/** The keys the running policy lets sshd accept for a login, and each key's verdict. */
export interface SshKeysView {
  generation: number;
  /** authorized_keys lines to print. */
  keys: string[];
  verdicts: { key: string; fingerprint: string; verdict: string; rule: string; reason: string }[];
}

export interface ApiControl extends Partial<SetControl> {
  snapshot: SnapshotSource;
  policy(): PolicyView;
  validate(text: string): ValidateResult | Promise<ValidateResult>;
  /** Same path as a reload: an invalid policy is refused and the running one stays. */
  apply(text: string, who: string, options?: ApplyOptions): ApplyOutcome | Promise<ApplyOutcome>;
  /** Keeps the policy on trial (saves it); ok: false when none is (it reverted already). */
  confirm(who: string): ApplyOutcome | Promise<ApplyOutcome>;
  /** `moat mode`: a local decision over the file's mode; "policy": the file's mode again. */
  setMode(mode: "detect" | "prevent" | "policy", who: string): ApplyOutcome | Promise<ApplyOutcome>;
  /** null when the history store is off. */
  queryHistory(query: HistoryQuery): HistoryPage | null | Promise<HistoryPage | null>;
  /** Replays stored events through a draft; null when the history store is off. */
  replay(request: ReplayRequest, context?: JobContext): Promise<ReplayOutcome | null>;
  /** Flow statistics from the history's roll-ups; null (or absent) when the history is off. */
  flowStats?(query: StatsQuery): StatsPage | null | Promise<StatsPage | null>;
  /** Suggested rules from the flow roll-ups; null (or absent) when the history is off. */
  suggest?(request: SuggestApiRequest, context?: JobContext): Promise<SuggestOutcome | null>;
  /** The anomalies reported (absent: no anomaly detection in this daemon). */
  anomalies?(): AnomalyView;
  /** Accepts anomaly `id` as normal, for `who`; null when no anomaly has that id. */
  acceptAnomaly?(id: string, who: string): Acceptance | null;
  /** The original destination of redirected client `peer`, or null if none is known. */
  original(peer: { ip: string; port: number }, protocol: "tcp" | "udp"): OriginalView | null;
  /** Judges a login by key (moat ssh-authkeys) and reports each decision as an event. */
  sshKeys(login: SshLoginQuery): SshKeysView;
  /** moat's local decisions (absent: this daemon keeps none). */
  decisions?(): DecisionsView;
  addDecision?(body: DecisionBody, who: string): Promise<DecisionOutcome>;
  removeDecision?(id: string, who: string): Promise<DecisionOutcome>;
  /** The review queue of unknown connections. */
  review?(): ReviewView;
  answerReview?(answer: ReviewAnswer, who: string): Promise<DecisionOutcome>;
  addSink(sink: EventSink, options?: SinkOptions): void;
  removeSink(sink: EventSink): Promise<void>;
  log(line: string): void;
  /** A line for the audit log (and the daemon's output): refused changes, with who tried. */
  audit(line: string): void;
}

/** A dynamic set's entry (GET /v1/sets). */
export interface SetEntryView {
  entry: string;
  /** ISO time; null: never. */
  expires: string | null;
}

/** A feed's last fetch, as the daemon saw it. */
export interface FeedStatusView {
  url?: string;
  category?: string;
  confidence?: number;
  /** ISO time of the last fetch attempt. */
  lastFetch?: string;
  /** ISO time the content last changed (a 200 with a new body). */
  lastChange?: string;
  /** "200", "304 not modified", or why it failed (the last good content stays). */
  lastResult?: string;
  /** Entries not taken from the last content (not an address, refused STIX patterns...). */
  refused?: number;
  /** Failed fetches since the daemon started. */
  failures?: number;
  /** ISO time of the first failure since the last good fetch; absent: the last fetch was good. */
  failingSince?: string;
  /** Why the last failed fetch failed, and when (ISO time); kept after a good fetch. */
  lastError?: string;
  lastErrorAt?: string;
}

/** A set whose entries come from elsewhere: a dynamic set or a feed (GET /v1/sets). */
export interface SetView {
  name: string;
  kind: "dynamic" | "feed";
  /** Entries the running policy holds. */
  count: number;
  /** Dynamic sets: every entry with its expiry. */
  entries?: SetEntryView[];
  /** Dynamic sets: an entry's default lifetime, seconds. */
  timeout?: number;
  maxEntries?: number;
  feed?: FeedStatusView;
}

/** `moat set add|del` (POST /v1/sets/add, /v1/sets/del). */
export interface SetChange {
  op: "add" | "del";
  set: string;
  entry: string;
  /** add: the entry's lifetime (default: the set's timeout). */
  timeoutSeconds?: number;
}

export type SetChangeOutcome =
  | { ok: true; generation: number; entries: number }
  | { ok: false; status: number; code: string; message: string };

/** What the daemon's set store answers (optional: not every control has one). */
export interface SetControl {
  sets(): SetView[];
  changeSet(change: SetChange, who: string): Promise<SetChangeOutcome>;
}

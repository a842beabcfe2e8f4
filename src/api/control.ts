// What the API asks of the daemon. The daemon implements it; tests may fake it.
import type { EventSink, SnapshotSource } from "../observe/sink.ts";
import type { SinkOptions } from "../observe/pipeline.ts";
import type { HistoryPage, HistoryQuery } from "../observe/history/query.ts";
import type { StatsPage, StatsQuery } from "../observe/history/rollup.ts";

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
}

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

export interface ApiControl {
  snapshot: SnapshotSource;
  policy(): PolicyView;
  validate(text: string): ValidateResult | Promise<ValidateResult>;
  /** Same path as a reload: an invalid policy is refused and the running one stays. */
  apply(text: string, who: string): ApplyOutcome | Promise<ApplyOutcome>;
  setMode(mode: "detect" | "prevent", who: string): ApplyOutcome | Promise<ApplyOutcome>;
  /** null when the history store is off. */
  queryHistory(query: HistoryQuery): HistoryPage | null | Promise<HistoryPage | null>;
  /** Flow statistics from the history's roll-ups; null (or absent) when the history is off. */
  flowStats?(query: StatsQuery): StatsPage | null | Promise<StatsPage | null>;
  /** The original destination of redirected client `peer`, or null if none is known. */
  original(peer: { ip: string; port: number }, protocol: "tcp" | "udp"): OriginalView | null;
  /** Judges a login by key (moat ssh-authkeys) and reports each decision as an event. */
  sshKeys(login: SshLoginQuery): SshKeysView;
  addSink(sink: EventSink, options?: SinkOptions): void;
  removeSink(sink: EventSink): Promise<void>;
  log(line: string): void;
  /** A line for the audit log (and the daemon's output): refused changes, with who tried. */
  audit(line: string): void;
}

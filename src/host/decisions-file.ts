// The file moat keeps its local decisions in (the daemon's store writes it; `moat explain` reads
// it): `{"version": 1, "decisions": [...], "mode": {...}}` (`mode`: `moat mode`'s decision, when
// one holds). Read here with what has run out left out: a
// duration past, an "until reboot" decision of an earlier boot, an entry that is not a decision.
import { readFileSync } from "node:fs";
import { readTrustedFile, UnsafeFileError } from "./trusted-file.ts";
import {
  decisionProblems,
  modeDecisionProblems,
  type LocalDecision,
  type ModeDecision,
} from "../config/index.ts";
import { unknownDecisionKeys } from "../config/decision.ts";

export const DEFAULT_DECISIONS = "/var/lib/moat/decisions.json";

/** A larger decisions file is refused (10,000 decisions take a few MiB). */
export const MAX_DECISIONS_BYTES = 64 * 2 ** 20;

/** This boot's id (a "reboot" decision holds while it is the same). */
export function bootId(): string {
  try {
    return readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim();
  } catch {
    return "unknown";
  }
}

export interface DecisionsRead {
  /** The decisions in force, in the file's order. */
  decisions: LocalDecision[];
  /** The mode `moat mode` decided, if one holds. */
  mode?: ModeDecision;
  /** Entries left out, in words; and `changed` when there were any. */
  notes: string[];
  changed: boolean;
}

/** Reads the file; a missing file is no decisions; any other failure throws. */
export function readDecisionsFile(path: string, boot: string, now: number): DecisionsRead {
  let text: string;
  try {
    // a decision can switch the daemon to detect: only a file no one but root could have written
    text = readTrustedFile(path, { what: "local decisions file", maxBytes: MAX_DECISIONS_BYTES });
  } catch (err) {
    if (err instanceof UnsafeFileError && err.missing)
      return { decisions: [], notes: [], changed: false };
    throw err;
  }
  const saved = JSON.parse(text) as { decisions?: unknown; mode?: unknown } | null;
  const list = saved?.decisions;
  if (!Array.isArray(list)) throw new Error(`${path} has no decisions list`);
  const notes: string[] = [];
  const decisions: LocalDecision[] = [];
  let changed = false;
  for (const stored of list) {
    const { entry, unknown } = withoutUnknownKeys(stored);
    const problems = decisionProblems(entry);
    const d = entry as LocalDecision;
    if (unknown.length > 0 && problems.length === 0) {
      notes.push(`a stored decision ${d.id} has keys no decision has, left out: ${unknown}`);
      changed = true;
    }
    if (problems.length > 0) notes.push(`a stored decision is dropped: ${problems.join("; ")}`);
    else if (d.expires && Date.parse(d.expires) <= now)
      notes.push(`decision ${d.id} expired while moat was not running`);
    else if (d.lifetime === "reboot" && d.boot !== boot)
      notes.push(`decision ${d.id} (until reboot) ended with the reboot`);
    else decisions.push(d);
  }
  if (decisions.length !== list.length) changed = true;
  const modeProblems = saved?.mode === undefined ? [] : modeDecisionProblems(saved.mode);
  if (modeProblems.length > 0) {
    notes.push(`the stored mode decision is dropped: ${modeProblems.join("; ")}`);
    changed = true;
  }
  const mode = saved?.mode !== undefined && modeProblems.length === 0 ? saved.mode : undefined;
  return { decisions, ...(mode ? { mode: mode as ModeDecision } : {}), notes, changed };
}

/**
 * A stored entry with the keys no decision has taken out (an earlier moat kept what a request
 * sent: a misspelt `ports` meant every port, which is what the decision keeps holding).
 */
function withoutUnknownKeys(stored: unknown): { entry: unknown; unknown: string } {
  if (typeof stored !== "object" || stored === null || Array.isArray(stored))
    return { entry: stored, unknown: "" };
  const unknown = unknownDecisionKeys(stored);
  if (unknown.length === 0) return { entry: stored, unknown: "" };
  const entry: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(stored)) {
    if (unknown.includes(key)) continue;
    entry[key] = key === "process" ? processFieldsOnly(value) : value;
  }
  return { entry, unknown: unknown.join(", ") };
}

/** A stored process's path and user alone (without its user a decision holds for every user). */
function processFieldsOnly(value: unknown): unknown {
  if (typeof value !== "object" || value === null || !("path" in value)) return value;
  return { path: value.path, ...("user" in value ? { user: value.user } : {}) };
}

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
  for (const entry of list) {
    const problems = decisionProblems(entry);
    const d = entry as LocalDecision;
    if (problems.length > 0) notes.push(`a stored decision is dropped: ${problems.join("; ")}`);
    else if (d.expires && Date.parse(d.expires) <= now)
      notes.push(`decision ${d.id} expired while moat was not running`);
    else if (d.lifetime === "reboot" && d.boot !== boot)
      notes.push(`decision ${d.id} (until reboot) ended with the reboot`);
    else decisions.push(d);
  }
  let changed = decisions.length !== list.length;
  const modeProblems = saved?.mode === undefined ? [] : modeDecisionProblems(saved.mode);
  if (modeProblems.length > 0) {
    notes.push(`the stored mode decision is dropped: ${modeProblems.join("; ")}`);
    changed = true;
  }
  const mode = saved?.mode !== undefined && modeProblems.length === 0 ? saved.mode : undefined;
  return { decisions, ...(mode ? { mode: mode as ModeDecision } : {}), notes, changed };
}

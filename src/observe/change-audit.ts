// The lines the audit log keeps about changes to what moat enforces: a policy applied or refused
// (through the API, by SIGHUP, by a change of the policy or a set file), a mode switch, an API
// change refused for a missing scope; each names who or what made it. One format for all.

export interface ChangeOutcome {
  ok: boolean;
  generation: number;
  errors: string[];
}

/** Where a change line goes: the audit log (when one is configured). */
export interface ChangeNotes {
  note(line: string): void;
}

/** Who a reload's reason names: "SIGHUP" -> "signal SIGHUP", "file changed" -> "file change". */
function reloadCause(reason: string): string {
  if (reason === "file changed") return "file change";
  if (/^SIG[A-Z0-9]+$/.test(reason)) return `signal ${reason}`;
  return reason;
}

/** `changes`: what the policy changed against the one before (policyChanges), when known. */
export function appliedLine(
  what: string,
  who: string,
  generation: number,
  mode: string,
  hash: string,
  changes?: string,
): string {
  const line = `POLICY APPLIED ${what} by ${who}: generation ${generation}, mode ${mode}, sha256 ${hash}`;
  return changes === undefined ? line : `${line}; ${changes}`;
}

export function refusedLine(what: string, who: string, hash: string, errors: number): string {
  return `POLICY REFUSED ${what} from ${who} (sha256 ${hash}): ${errors} errors`;
}

/** The audit line of a reload of the policy file (SIGHUP, file change). */
export function reloadLine(
  reason: string,
  outcome: ChangeOutcome,
  running: { mode: string; hash: string },
): string {
  const who = reloadCause(reason);
  return outcome.ok
    ? appliedLine("reload", who, outcome.generation, running.mode, running.hash)
    : `POLICY REFUSED reload from ${who}: ${outcome.errors.length} errors, generation ${outcome.generation} keeps running`;
}

/**
 * Audits a reload of the policy file, unless it changed nothing (the file event of the daemon's
 * own write after an API apply, which was audited as that apply).
 */
export function auditReload(
  notes: ChangeNotes,
  reason: string,
  before: number,
  outcome: ChangeOutcome,
  running: { mode: string; hash: string },
): ChangeOutcome {
  if (outcome.ok && outcome.generation === before) return outcome;
  notes.note(reloadLine(reason, outcome, running));
  return outcome;
}

/** A change line for both the audit log and the daemon's output. */
export function recordChange(notes: ChangeNotes, log: (line: string) => void, line: string): void {
  notes.note(line);
  log(line);
}

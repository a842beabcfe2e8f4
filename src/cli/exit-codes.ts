// The CLI's exit codes, one table: docs/operations.md ("CLI exit codes") lists the same, and the
// man page's EXIT STATUS section is generated from it.

export const EXIT = {
  ok: 0,
  /** An expected failure: the daemon unreachable, a policy refused, `moat check` found errors. */
  failed: 1,
  /** Unknown command or option, missing arguments. */
  usage: 2,
  /** `moat explain`: the connection is blocked. */
  blocked: 3,
  /** `moat explain`: the connection is detected (reported, not dropped). */
  detected: 4,
  /** `moat explain`: the verdict depends on facts not given (process, names, layer7). */
  deferred: 5,
  /** A defect: a stack trace follows. */
  internal: 70,
} as const;

/** `moat explain`'s exit code for a verdict (allowed is success). */
export function verdictExit(verdict: "allowed" | "blocked" | "detected" | "deferred"): number {
  return verdict === "allowed" ? EXIT.ok : EXIT[verdict];
}

/** Code, meaning: the rows of the documented table. */
export const EXIT_TABLE: [number, string][] = [
  [EXIT.ok, "done; `moat check`: every file valid; `moat explain`: the connection is allowed"],
  [
    EXIT.failed,
    "an expected failure, one line on stderr: the daemon unreachable, a policy refused (`moat policy apply`, with its errors; `--dry-run` of an invalid one), `moat check` found errors, `moat explain` could not load the policy, `moat policy confirm` with nothing on trial (reverted already), `moat ssh-authkeys` failed, `moat cleanup` refused because a daemon runs",
  ],
  [EXIT.usage, "usage error: unknown command or option, missing arguments, `moat` alone"],
  [EXIT.blocked, "`moat explain`: blocked"],
  [EXIT.detected, "`moat explain`: detected (reported, not dropped)"],
  [
    EXIT.deferred,
    "`moat explain`: deferred, the verdict needs facts not given (process, names, layer7)",
  ],
  [EXIT.internal, "internal error (a stack trace follows; a defect)"],
];

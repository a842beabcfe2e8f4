// Diagnostics: what the policy loader reports, and the one error it throws.

import { capQuotedValues, printable } from "./printable.ts";

/** Where something is in a policy file (or a set file): 1-based line and column, and its path. */
export interface SourcePos {
  file: string;
  line: number;
  col: number;
  /** Path of the node in the policy, e.g. "rules[2].layer4.port[0]"; "(root)" for the document. */
  path: string;
}

export type Severity = "error" | "warning";

export interface Diagnostic extends SourcePos {
  message: string;
  severity: Severity;
}

/**
 * `FILE:LINE:COL path: message`; warnings say so after the path, like a compiler does,
 * so an error line is exactly the contract's shape and a warning cannot be mistaken for one.
 */
export function formatDiagnostic(d: Diagnostic): string {
  const kind = d.severity === "warning" ? "warning: " : "";
  return printable(`${d.file}:${d.line}:${d.col} ${d.path}: ${kind}${capQuotedValues(d.message)}`);
}

/** At most this many diagnostics are printed; a line then says how many more there are. */
export const MAX_SHOWN_DIAGNOSTICS = 100;

/**
 * The lines a person reads: the first MAX_SHOWN_DIAGNOSTICS, then "... and N more problems" (or
 * "... and N more warnings" when none of the rest is an error).
 */
export function diagnosticLines(diagnostics: readonly Diagnostic[], file: string): string[] {
  const lines = diagnostics.slice(0, MAX_SHOWN_DIAGNOSTICS).map(formatDiagnostic);
  const rest = diagnostics.slice(lines.length);
  if (rest.length === 0) return lines;
  const errors = rest.some((d) => d.severity !== "warning");
  const more = errors ? "problems (fix these first)" : "warnings";
  lines.push(printable(`${file}: ... and ${rest.length} more ${more}`));
  return lines;
}

export function diagnostic(
  pos: SourcePos,
  message: string,
  severity: Severity = "error",
): Diagnostic {
  return {
    file: pos.file,
    line: pos.line,
    col: pos.col,
    path: pos.path,
    message: capQuotedValues(message),
    severity,
  };
}

export function hasErrors(diagnostics: readonly Diagnostic[]): boolean {
  return diagnostics.some((d) => d.severity === "error");
}

/** Policy files first (in the order met), then by line and column. */
export function sortDiagnostics(diagnostics: readonly Diagnostic[]): Diagnostic[] {
  const fileOrder = new Map<string, number>();
  for (const d of diagnostics) if (!fileOrder.has(d.file)) fileOrder.set(d.file, fileOrder.size);
  return [...diagnostics].sort(
    (a, b) =>
      (fileOrder.get(a.file) ?? 0) - (fileOrder.get(b.file) ?? 0) ||
      a.line - b.line ||
      a.col - b.col,
  );
}

/** A policy that cannot be used: every problem found, one per line in `message`. */
export class PolicyError extends Error {
  readonly code = "EPOLICY";
  readonly diagnostics: Diagnostic[];

  constructor(diagnostics: Diagnostic[]) {
    super(diagnosticLines(diagnostics, diagnostics[0]?.file ?? "policy").join("\n"));
    this.name = "PolicyError";
    this.diagnostics = diagnostics;
  }
}

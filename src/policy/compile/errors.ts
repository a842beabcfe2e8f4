// Expected compile failures: a policy the kernel tables cannot hold (EPOLICYSIZE), or one that
// uses what packet hooks cannot judge (EPOLICYUNSUPPORTED). Never a silent truncation.

import type { Rule } from "../../config/model.ts";

export type CompileErrorCode = "EPOLICYSIZE" | "EPOLICYUNSUPPORTED";

export class CompileError extends Error {
  readonly code: CompileErrorCode;

  constructor(code: CompileErrorCode, message: string) {
    super(message);
    this.name = "CompileError";
    this.code = code;
  }
}

/**
 * "rule a (line 3): 120 classes, rule b (line 9): 1 class" for the `top` largest counts;
 * `unit` is [singular, plural].
 */
export function topRules(
  rules: readonly Rule[],
  counts: ArrayLike<number>,
  unit: [string, string],
  top = 3,
): string {
  const order: number[] = [];
  for (let i = 0; i < counts.length; i++) if (counts[i]! > 0) order.push(i);
  order.sort((a, b) => counts[b]! - counts[a]! || a - b);
  const named = order.slice(0, top).map((i) => {
    const n = counts[i]!;
    return `rule ${rules[i]!.name} (line ${rules[i]!.pos.line}): ${n} ${n === 1 ? unit[0] : unit[1]}`;
  });
  return named.length > 0 ? named.join(", ") : "no single rule";
}

/** `partial`: counting stopped at the budget, so `count` is a lower bound. */
export function sizeError(
  what: string,
  count: number,
  budget: number,
  causes: string,
  partial = false,
): CompileError {
  const needs = `${partial ? "more than " : ""}${count.toLocaleString("en-US")}`;
  return new CompileError(
    "EPOLICYSIZE",
    `policy too large for the kernel tables: ${what} needs ${needs} entries ` +
      `(limit ${budget.toLocaleString("en-US")}); most come from ${causes}`,
  );
}

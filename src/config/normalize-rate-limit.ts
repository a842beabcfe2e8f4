// A rule's `rate_limit` (schema-valid) -> the model's RateLimit, with the checks the schema cannot
// make: a limit on an allow rule only, a rate the kernel's arithmetic holds.
import type { CheckContext } from "./check-context.ts";
import { parseDuration } from "./duration.ts";
import type { RateLimit } from "./model.ts";
import type { RuleDocument } from "./schema.ts";
import type { PathSegment } from "./yaml-source.ts";

const PERIODS = { s: 1, m: 60, h: 3600 } as const;
/** Packets per period the kernel's integer arithmetic holds without overflow (period <= 1h). */
export const MAX_LIMIT_COUNT = 1_000_000;
const DEFAULT_REPORT_SECONDS = 10;

export function normalizeRateLimit(
  ctx: CheckContext,
  raw: RuleDocument,
  path: readonly PathSegment[],
): RateLimit | undefined {
  const doc = raw.rate_limit;
  const at = [...path, "rate_limit"];
  if (!doc || !ctx.clean(at)) return undefined;
  if (raw.action !== "allow") {
    ctx.error(
      at,
      "a rate limit belongs on an allow rule: a block rule already drops all it matches",
    );
    return undefined;
  }
  const [n, unit] = doc.rate.split("/") as [string, keyof typeof PERIODS];
  const count = Number(n);
  if (count < 1 || count > MAX_LIMIT_COUNT) {
    ctx.error([...at, "rate"], `the count must be 1 to ${MAX_LIMIT_COUNT} packets per period`);
    return undefined;
  }
  const algorithm = doc.algorithm ?? "token_bucket";
  const windowed = algorithm === "fixed_window" || algorithm === "sliding_window";
  if (windowed && doc.burst !== undefined)
    ctx.warn(
      [...at, "burst"],
      `'burst' has no effect on ${algorithm}: a window admits the rate's count`,
    );
  let reportSeconds = DEFAULT_REPORT_SECONDS;
  if (doc.report_every !== undefined) {
    const d = parseDuration(doc.report_every);
    if (!d.ok) {
      ctx.error([...at, "report_every"], d.error);
      return undefined;
    }
    reportSeconds = d.value;
  }
  const burst = windowed ? count : (doc.burst ?? (algorithm === "leaky_bucket" ? 1 : count));
  return {
    algorithm,
    count,
    periodSeconds: PERIODS[unit],
    burst,
    prefix4: doc.source?.ipv4 ?? 32,
    prefix6: doc.source?.ipv6 ?? 128,
    perPort: doc.per_port ?? false,
    reportSeconds,
    text: doc.rate,
    pos: ctx.pos(at),
  };
}

// `flood` (schema-valid) -> the model's SynFlood, with the checks the schema cannot make.
import type { CheckContext } from "./check-context.ts";
import { parseDuration } from "./duration.ts";
import type { Mode, PolicyModel } from "./model.ts";
import type { PolicyDocument, RuleDocument } from "./schema.ts";
import { normalizeRateLimit } from "./normalize-rate-limit.ts";

/** Services that answer a small UDP request with a much bigger reply. */
export const AMPLIFICATION_PORTS = [19, 53, 123, 161, 389, 1900, 11211];

const DEFAULT_HOLD_SECONDS = 10;
/** SYNs per second the kernel's bucket (ns per SYN) still tells apart. */
export const MAX_SYN_RATE = 10_000_000;

export function normalizeSynFlood(
  ctx: CheckContext,
  doc: PolicyDocument,
  globalMode: Mode,
): Pick<PolicyModel, "synFlood"> {
  const syn = doc.flood?.syn;
  const at = ["flood", "syn"];
  if (!syn || !ctx.clean(at)) return {};
  const rate = Number(syn.rate.split("/")[0]);
  if (rate < 1 || rate > MAX_SYN_RATE) {
    ctx.error([...at, "rate"], `the rate must be 1 to ${MAX_SYN_RATE} SYNs per second`);
    return {};
  }
  let holdSeconds = DEFAULT_HOLD_SECONDS;
  if (syn.hold !== undefined) {
    const d = parseDuration(syn.hold);
    if (!d.ok) {
      ctx.error([...at, "hold"], d.error);
      return {};
    }
    holdSeconds = d.value;
  }
  const ports = [...new Set(syn.ports ?? [])].sort((a, b) => a - b);
  if (syn.ports && ports.length !== syn.ports.length)
    ctx.warn([...at, "ports"], "a port is listed twice");
  return {
    synFlood: {
      ports,
      rate,
      burst: syn.burst ?? rate,
      holdSeconds,
      mode: syn.mode ?? globalMode,
      pos: ctx.pos(at),
    },
  };
}

/** `flood.udp_amplification`: its limit is a rate limit's, checked as one (normalizeRateLimit). */
export function normalizeUdpAmplification(
  ctx: CheckContext,
  doc: PolicyDocument,
  globalMode: Mode,
): Pick<PolicyModel, "udpAmplification"> {
  const amp = doc.flood?.udp_amplification;
  const at = ["flood", "udp_amplification"];
  if (!amp || !ctx.clean(at)) return {};
  const asRule = { action: "allow", rate_limit: amp.rate_limit } as RuleDocument;
  const limit = normalizeRateLimit(ctx, asRule, at);
  if (!limit) return {};
  if (amp.rate_limit.per_port !== undefined)
    ctx.warn([...at, "rate_limit", "per_port"], "always per source port here");
  return {
    udpAmplification: {
      ports: [...new Set(amp.ports ?? AMPLIFICATION_PORTS)].sort((a, b) => a - b),
      limit: { ...limit, perPort: true },
      mode: amp.mode ?? globalMode,
      pos: ctx.pos(at),
    },
  };
}

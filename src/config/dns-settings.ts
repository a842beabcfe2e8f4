// The `dns` section (docs/policy.md, "Names"): which resolvers besides /etc/resolv.conf's are
// trusted to bind names to addresses, and how long a binding lives (max(answer TTL, min_ttl) +
// grace). Always in the model, with its defaults when the section is absent. Its schema is
// DnsSettingsSchema in schema.ts.

import type { CheckContext } from "./check-context.ts";
import { parseDuration } from "./duration.ts";
import { formatIp, parseIp, unmapIpv4 } from "./ip.ts";
import type { DnsSettings } from "./model.ts";
import { fail, ok, type Parsed } from "./parsed.ts";

export const DEFAULT_MIN_TTL_SECONDS = 5;
export const DEFAULT_GRACE_SECONDS = 30;
/** A binding held for longer than a day outlives most DNS changes: more is an error. */
export const MAX_BINDING_SECONDS = 86400;

/** A duration that may be zero ("0s", 0): no floor, no grace. */
function durationOrZero(value: number | string): Parsed<number> {
  if (value === 0 || (typeof value === "string" && /^\s*(0+[smhd])+\s*$/.test(value))) return ok(0);
  return parseDuration(value);
}

function seconds(
  ctx: CheckContext,
  value: number | string | undefined,
  field: "min_ttl" | "grace",
  fallback: number,
): number {
  if (value === undefined || !ctx.clean(["dns", field])) return fallback;
  const parsed = durationOrZero(value);
  if (!parsed.ok) {
    ctx.error(["dns", field], parsed.error);
    return fallback;
  }
  if (parsed.value > MAX_BINDING_SECONDS) {
    ctx.error(
      ["dns", field],
      `'${String(value)}' is longer than a day: a name's addresses held that long outlive most DNS changes (at most 1d)`,
    );
    return fallback;
  }
  return parsed.value;
}

function resolver(text: string): Parsed<string> {
  const ip = parseIp(text);
  if (!ip.ok)
    return text.includes("/")
      ? fail(`'${text}' is a network: name each resolver by its IP address`)
      : fail(`${ip.error}: a resolver is named by its IP address`);
  return ok(formatIp(unmapIpv4(ip.value)));
}

type DnsDocument = {
  attach?: { cgroup?: string };
  dns?: {
    resolvers?: string[];
    min_ttl?: number | string;
    grace?: number | string;
    doh?: "allow" | "block";
    doh_list?: string;
    ech?: "strip" | "keep";
  };
};

export function dnsSettings(ctx: CheckContext, doc: DnsDocument): DnsSettings {
  const settings: DnsSettings = {
    resolvers: [],
    minTtlSeconds: DEFAULT_MIN_TTL_SECONDS,
    graceSeconds: DEFAULT_GRACE_SECONDS,
    doh: "allow",
    ech: "keep",
  };
  const dns = doc.dns;
  if (!dns || !ctx.typed(["dns"])) return settings;
  settings.pos = ctx.pos(["dns"]);
  if (ctx.typed(["dns", "resolvers"]))
    dns.resolvers?.forEach((text, i) => {
      if (!ctx.clean(["dns", "resolvers", i])) return;
      const ip = resolver(text);
      if (!ip.ok) return ctx.error(["dns", "resolvers", i], ip.error);
      if (settings.resolvers.includes(ip.value))
        return ctx.warn(["dns", "resolvers", i], `resolver ${ip.value} is listed twice`);
      settings.resolvers.push(ip.value);
    });
  settings.minTtlSeconds = seconds(ctx, dns.min_ttl, "min_ttl", DEFAULT_MIN_TTL_SECONDS);
  settings.graceSeconds = seconds(ctx, dns.grace, "grace", DEFAULT_GRACE_SECONDS);
  if (dns.doh !== undefined && ctx.clean(["dns", "doh"])) settings.doh = dns.doh;
  if (dns.ech !== undefined && ctx.clean(["dns", "ech"])) settings.ech = dns.ech;
  if (dns.doh_list !== undefined && ctx.clean(["dns", "doh_list"]))
    settings.dohList = ctx.host.resolve(ctx.source.file, dns.doh_list);
  // the canary answer and the list's names are the DNS proxy's work, which serves attach.cgroup
  if (settings.doh === "block" && doc.attach?.cgroup === undefined)
    ctx.error(
      ["dns", "doh"],
      "'doh: block' needs attach.cgroup: moat's DNS proxy (which answers the canary use-application-dns.net and learns the resolvers' names) serves the processes under attach.cgroup",
    );
  return settings;
}

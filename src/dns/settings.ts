// The policy's `dns` section as the proxy reads it, with its defaults: trusted resolvers named
// in the policy, the TTL floor and the grace a binding outlives its TTL by.
import type { PolicyModel } from "../config/index.ts";

export interface DnsSettings {
  /** IP literals trusted besides /etc/resolv.conf's nameservers and loopback. */
  resolvers: string[];
  minTtlSeconds: number;
  graceSeconds: number;
}

export const DNS_DEFAULTS: DnsSettings = { resolvers: [], minTtlSeconds: 5, graceSeconds: 30 };

/** `model.dns`, or the defaults for what it does not say. */
export function dnsSettings(model: PolicyModel): DnsSettings {
  const dns = (model as { dns?: Partial<DnsSettings> }).dns;
  return {
    resolvers: dns?.resolvers ?? DNS_DEFAULTS.resolvers,
    minTtlSeconds: dns?.minTtlSeconds ?? DNS_DEFAULTS.minTtlSeconds,
    graceSeconds: dns?.graceSeconds ?? DNS_DEFAULTS.graceSeconds,
  };
}

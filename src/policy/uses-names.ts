// Whether a policy names hosts: then the daemon starts moat's DNS proxy and the compiler sends
// the DNS queries of processes under attach.cgroup to it (docs/policy.md, "Names").
import type { AddressEntry, PolicyModel } from "../config/model.ts";

const hasHostname = (entries: readonly AddressEntry[]): boolean =>
  entries.some((e) => e.kind === "hostname" || (e.kind === "set" && hasHostname(e.entries)));

/** Hostname entries in a rule's layer3.remote (sets expanded), or a rule's layer7.dns.name. */
export function usesNames(model: PolicyModel): boolean {
  // an empty name list still makes the rule one the proxy decides
  return model.rules.some(
    (r) => hasHostname(r.layer3?.remote?.entries ?? []) || r.layer7?.dns?.name !== undefined,
  );
}

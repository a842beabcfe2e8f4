// Whether a policy needs DNS names: a rule (or a local decision) names hosts in its remote list, or judges DNS queries
// by name, or an L7 rule checks a Host header or SNI against the names. The daemon starts the DNS proxy, and the compiler adds the redirect of DNS queries to
// it, exactly then (docs/policy.md, "Names"), and when the policy turns DoH off.
import type { AddressEntry, PolicyModel, Rule } from "../config/model.ts";
import { isAddressOnly } from "../config/address-only.ts";
import { decisionRules } from "./decision-rules.ts";
import { perModel } from "./per-model.ts";

const hasHostname = (entries: readonly AddressEntry[]): boolean =>
  !isAddressOnly(entries) &&
  entries.some((e) => e.kind === "hostname" || (e.kind === "set" && hasHostname(e.entries)));

/**
 * Hostname entries in the rule's layer3.remote (sets expanded), a layer7.dns.name, or an
 * http.host that is not taken on trust (it matches names resolved to the address).
 */
export const ruleUsesNames = (r: Rule): boolean =>
  // an empty name list still makes the rule one the proxy decides
  hasHostname(r.layer3?.remote?.entries ?? []) ||
  r.layer7?.dns?.name !== undefined ||
  (r.layer7?.http?.host !== undefined && r.layer7.http.trust_host !== true);

/** http.host or tls.sni not taken on trust: they match names the proxy bound to the address. */
export const ruleChecksL7Names = (r: Rule): boolean =>
  (r.layer7?.http?.host !== undefined && r.layer7.http.trust_host !== true) ||
  (r.layer7?.tls?.sni !== undefined && r.layer7.tls.trust_sni !== true);

/** Also `dns: { doh: block }`: the proxy answers the canary use-application-dns.net. */
export const usesNames = perModel(
  (model: PolicyModel): boolean =>
    model.dns.doh === "block" ||
    model.rules.some((r) => ruleUsesNames(r) || ruleChecksL7Names(r)) ||
    decisionRules(model).some(ruleUsesNames),
);

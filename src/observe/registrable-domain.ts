// The registrable domain of a DNS name, by the Public Suffix List with its private suffixes
// (api.github.com -> github.com, a.b.example.co.uk -> example.co.uk, me.github.io ->
// me.github.io): what learning generalises to and what anomaly detection calls a destination.
import { getDomain } from "tldts";

/** Names whose domain is remembered: anomaly detection asks it for every DNS query. */
const KNOWN_NAMES = 4096;
const known = new Map<string, string>();

/** `name`'s registrable domain (lower case, no trailing dot); null for a public suffix itself. */
export function domainOf(name: string): string | null {
  return getDomain(name.toLowerCase().replace(/\.$/, ""), { allowPrivateDomains: true });
}

/** `name`'s registrable domain (lower case, no trailing dot); the name itself when it has none. */
export function registrableDomain(name: string): string {
  let domain = known.get(name);
  if (domain === undefined) {
    domain = domainOf(name) ?? name.toLowerCase().replace(/\.$/, "");
    if (known.size >= KNOWN_NAMES) known.clear();
    known.set(name, domain);
  }
  return domain;
}

// The registrable domain of a DNS name, by the Public Suffix List with its private suffixes
// (api.github.com -> github.com, a.b.example.co.uk -> example.co.uk, me.github.io ->
// me.github.io): what learning generalises to and what anomaly detection calls a destination.
import { getDomain } from "tldts";

/** `name`'s registrable domain (lower case, no trailing dot); the name itself when it has none. */
export function registrableDomain(name: string): string {
  const n = name.toLowerCase().replace(/\.$/, "");
  return getDomain(n, { allowPrivateDomains: true }) ?? n;
}

// moat's DNS proxy: judges the DNS queries of processes under attach.cgroup, binds the names
// trusted answers give to the asking identity in the kernel before the answer goes out, and
// knows the names of addresses for events (docs/dns.md).
export { DnsProxy, type DnsProxyOptions, type DnsProxyStats, type ListenAddress } from "./proxy.ts";
export { BindingStore, NEVER, type LearnedAddress, type SweepResult } from "./bindings.ts";
export {
  trustedResolvers,
  resolvConfNameservers,
  unmapped,
  type TrustedResolvers,
} from "./trusted.ts";
export { parseHosts, readHosts, HOSTS_FILE } from "./hosts-file.ts";
export { policyJudge, queryFacts, type QueryJudge, type QueryVerdict } from "./query-judge.ts";

export { identityOf } from "./identity.ts";
export {
  identityKey,
  ZERO_IDENTITY,
  type ClassesOf,
  type DnsOwner,
  type JournaledName,
  type JournalKey,
  type NameBinder,
  type NameBinding,
  type NameIdentity,
  type NameKey,
  type OriginalLookup,
  type OriginalQuery,
} from "./ports.ts";

// The three ways a suggestion widens what was seen, each stated in the rule's comment:
// sibling subdomains under one registrable domain (Public Suffix List, private suffixes such as
// github.io included, so `*.github.io` is never proposed) -> a wildcard; adjacent ports -> a
// range; many addresses in one prefix -> the prefix. Nothing else is widened.
import { registrableDomain } from "../registrable-domain.ts";
import { formatIp, parseIp, type IpAddress } from "../../config/ip.ts";

export interface GeneraliseOptions {
  /** Distinct sibling names under one registrable domain that make `*.domain` (default 3). */
  siblings: number;
  /** Distinct addresses in one IPv4 /24 (IPv6 /64) that make the prefix (default 8). */
  addresses: number;
}

export const GENERALISE_DEFAULTS: GeneraliseOptions = { siblings: 3, addresses: 8 };

/** A destination entry as a rule will hold it, and the peers it stands for. */
export interface Destination {
  /** A layer3 `remote` entry: a name, `*.domain`, `**.domain`, an address or a CIDR. */
  entry: string;
  /** The peers (names or addresses) it covers, as seen. */
  peers: string[];
  /** Why it is wider than one peer; absent when it is one. */
  because?: string;
}

const PREFIX = { 4: 24, 6: 64 } as const;

function prefixOf(ip: IpAddress): string {
  const bits = PREFIX[ip.family];
  const width = ip.family === 4 ? 32 : 128;
  const mask = ((1n << BigInt(bits)) - 1n) << BigInt(width - bits);
  return `${formatIp({ family: ip.family, value: ip.value & mask })}/${bits}`;
}

/** Peers -> destination entries: names grouped by registrable domain, addresses by prefix. */
export function generalisePeers(
  peers: Iterable<string>,
  options: GeneraliseOptions = GENERALISE_DEFAULTS,
): Destination[] {
  const byDomain = new Map<string, string[]>();
  const byPrefix = new Map<string, string[]>();
  const out: Destination[] = [];
  for (const peer of new Set(peers)) {
    const ip = parseIp(peer);
    if (ip.ok) {
      const prefix = prefixOf(ip.value);
      // pushed, never copied: one prefix or domain may hold every row read
      const list = byPrefix.get(prefix);
      if (list) list.push(peer);
      else byPrefix.set(prefix, [peer]);
      continue;
    }
    const domain = registrableDomain(peer);
    if (domain === peer) out.push({ entry: peer, peers: [peer] });
    else if (byDomain.has(domain)) byDomain.get(domain)!.push(peer);
    else byDomain.set(domain, [peer]);
  }
  for (const [domain, names] of byDomain) {
    if (names.length < options.siblings) {
      for (const name of names) out.push({ entry: name, peers: [name] });
      continue;
    }
    // `*.d` is one label below d; names deeper than that need `**.d`
    const deeper = names.some((n) => n.slice(0, -domain.length - 1).includes("."));
    const entry = `${deeper ? "**" : "*"}.${domain}`;
    out.push({
      entry,
      peers: names.sort(),
      because: `${names.length} sibling subdomains of the registrable domain ${domain} (>= ${options.siblings})`,
    });
  }
  for (const [prefix, ips] of byPrefix) {
    if (ips.length < options.addresses) {
      for (const ip of ips) out.push({ entry: ip, peers: [ip] });
      continue;
    }
    out.push({
      entry: prefix,
      peers: ips.sort(),
      because: `${ips.length} addresses in ${prefix} (>= ${options.addresses})`,
    });
  }
  return out.sort((a, b) => (a.entry < b.entry ? -1 : a.entry > b.entry ? 1 : 0));
}

/** Ports -> `port` entries: runs of adjacent ports as "a-b", the rest as they are. */
export function portRanges(ports: Iterable<number>): (number | string)[] {
  const sorted = [...new Set(ports)].sort((a, b) => a - b);
  const out: (number | string)[] = [];
  for (let i = 0; i < sorted.length;) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j]! + 1) j++;
    out.push(j > i ? `${sorted[i]}-${sorted[j]}` : sorted[i]!);
    i = j + 1;
  }
  return out;
}

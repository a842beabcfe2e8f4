// Which resolvers' answers bind names: the nameservers of /etc/resolv.conf, the policy's
// `dns.resolvers`, and any loopback address (a local stub answers from its own upstreams). An
// answer from any other server is passed on unchanged but binds nothing.
import { readFileSync } from "node:fs";
import { BlockList, isIP } from "node:net";

export const RESOLV_CONF = "/etc/resolv.conf";

/** The nameserver addresses of a resolv.conf text (a zone index like `%eth0` dropped). */
export function resolvConfNameservers(text: string): string[] {
  const out: string[] = [];
  for (const line of text.split("\n")) {
    const m = /^\s*nameserver\s+(\S+)/.exec(line);
    const ip = m?.[1]?.replace(/%.*$/, "");
    if (ip && isIP(ip)) out.push(ip);
  }
  return out;
}

/** An IPv4-mapped IPv6 address as IPv4; anything else as given. */
export function unmapped(ip: string): string {
  if (!ip.startsWith("::")) return ip; // most addresses: no regular expression
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  return m?.[1] ?? ip;
}

export interface TrustedResolvers {
  isTrusted(ip: string): boolean;
  /** The addresses trusted besides loopback, for the start log. */
  readonly listed: readonly string[];
}

/** Servers whose trust is remembered (the set is rebuilt at every reload anyway). */
const KNOWN_SERVERS = 1024;

/** Reads `resolvConf` now (an unreadable file lists nothing). */
export function trustedResolvers(
  policyResolvers: readonly string[],
  resolvConf: string = RESOLV_CONF,
): TrustedResolvers {
  let fromFile: string[] = [];
  try {
    fromFile = resolvConfNameservers(readFileSync(resolvConf, "utf8"));
  } catch {
    // no resolv.conf: only the policy's resolvers and loopback
  }
  const listed = [...new Set([...fromFile, ...policyResolvers.map(unmapped)])];
  const list = new BlockList();
  list.addSubnet("127.0.0.0", 8, "ipv4");
  list.addAddress("::1", "ipv6");
  for (const ip of listed) list.addAddress(ip, isIP(ip) === 6 ? "ipv6" : "ipv4");
  const check = (ip: string): boolean => {
    const plain = unmapped(ip);
    const family = isIP(plain);
    if (family === 0) return false;
    return list.check(plain, family === 6 ? "ipv6" : "ipv4");
  };
  // the proxy asks this per query, of the few servers clients use
  const known = new Map<string, boolean>();
  return {
    listed,
    isTrusted(ip) {
      let trusted = known.get(ip);
      if (trusted === undefined) {
        if (known.size >= KNOWN_SERVERS) known.clear();
        trusted = check(ip);
        known.set(ip, trusted);
      }
      return trusted;
    },
  };
}

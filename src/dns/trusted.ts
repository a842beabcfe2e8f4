// Which resolvers' answers bind names: the nameservers of /etc/resolv.conf, the policy's
// `dns.resolvers`, and any loopback address (a local stub answers from its own upstreams). An
// answer from any other server is passed on unchanged but binds nothing. Loopback is the host's
// only in moat's own network namespace: in a container's, 127.0.0.0/8 and ::1 are the
// container's, where any of its processes may answer, so there no loopback server is trusted
// but Docker's embedded resolver, 127.0.0.11. A network namespace that another user namespace
// owns (a rootless container's, `unshare -rn`'s) is its user's: root there, the user puts any
// address on its loopback and routes any query to a server of its own, so no answer asked
// through it is trusted, whatever the server's address.
import { readFileSync } from "node:fs";
import { BlockList, isIP } from "node:net";
import { ownedByOwnUserNamespace } from "../datapath/netns-socket.ts";

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
  /** `hostNamespace`: the query came through moat's own network namespace (not a container's). */
  isTrusted(ip: string, hostNamespace: boolean): boolean;
  /** The addresses trusted besides loopback, for the start log. */
  readonly listed: readonly string[];
}

/**
 * The network namespace a query came through: moat's own; another one moat's user namespace owns
 * (a container's); or one another user namespace owns, or whose owner is unknown.
 */
export type QueryNamespace = "moat" | "container" | "user-owned";

/** A network namespace the proxy serves besides moat's own. */
export type ServedNamespace = Exclude<QueryNamespace, "moat">;

/** Who owns the network namespace at `nsPath` (an unreadable owner: "user-owned"). */
export function servedNamespace(nsPath: string): ServedNamespace {
  return ownedByOwnUserNamespace(nsPath) ? "container" : "user-owned";
}

/** Whether an answer `server` gave to a query asked through `namespace` binds names. */
export function answerBinds(
  trusted: TrustedResolvers,
  server: string,
  namespace: QueryNamespace,
): boolean {
  // its user decides where its queries go: a listed address there may be the user's own server
  if (namespace === "user-owned") return false;
  return trusted.isTrusted(server, namespace === "moat");
}

/** Servers whose trust is remembered (the set is rebuilt at every reload anyway). */
const KNOWN_SERVERS = 1024;

const DOCKER_RESOLVER = "127.0.0.11";
const LOOPBACK = new BlockList();
LOOPBACK.addSubnet("127.0.0.0", 8, "ipv4");
LOOPBACK.addAddress("::1", "ipv6");

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
  for (const ip of listed) list.addAddress(ip, isIP(ip) === 6 ? "ipv6" : "ipv4");
  const trustOf = (ip: string): Trust => {
    const plain = unmapped(ip);
    const family = isIP(plain);
    if (family === 0) return "none";
    const type = family === 6 ? "ipv6" : "ipv4";
    // Docker's embedded resolver: in a container's namespace Docker's own NAT rule sends its
    // port 53 to dockerd before any process of the container could answer there
    if (plain === DOCKER_RESOLVER) return "anywhere";
    // a listed loopback address (resolv.conf's 127.0.0.53) is loopback all the same
    if (LOOPBACK.check(plain, type)) return "host";
    return list.check(plain, type) ? "anywhere" : "none";
  };
  // the proxy asks this per query, of the few servers clients use
  const known = new Map<string, Trust>();
  return {
    listed,
    isTrusted(ip, hostNamespace) {
      let trust = known.get(ip);
      if (trust === undefined) {
        if (known.size >= KNOWN_SERVERS) known.clear();
        trust = trustOf(ip);
        known.set(ip, trust);
      }
      return trust === "anywhere" || (trust === "host" && hostNamespace);
    },
  };
}

/** Where a server's answers bind names ("host": a loopback server, only through moat's own namespace). */
type Trust = "none" | "host" | "anywhere";

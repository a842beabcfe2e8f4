// What is known about a connection when it is judged. Packet hooks know the 5-tuple; socket hooks
// add the process, the route check adds the interface, the L7 proxy adds layer7, the DNS cache adds
// the names of an address. A fact that is absent is unknown, which is not the same as empty.

import type { ContainerFacts, ProcessFacts } from "../attribution/types.ts";

export type { ContainerFacts, ProcessFacts } from "../attribution/types.ts";

export type ProtocolFact = "tcp" | "udp" | "icmp" | "icmpv6" | number;

export interface EndpointFacts {
  ip: string;
  /** Required for tcp and udp. */
  port?: number;
  /** DNS names known to resolve to this address (for hostname entries); absent = unknown. */
  names?: string[];
}

/**
 * The process as attribution reports it (src/attribution), or part of it: a field left out is
 * unknown (`moat explain` with some fields given) and a rule that needs it is "maybe".
 */
export type KnownProcess = Partial<Omit<ProcessFacts, "container">> & {
  /** null = not in a container; absent = unknown. */
  container?: Partial<ContainerFacts> | null;
};

export interface InterfaceFacts {
  name: string;
  tunnel: boolean;
}

export interface HttpFacts {
  host: string;
  method: string;
  path: string;
  /**
   * Header names in any case. Absent = unknown: events never carry headers (they hold
   * credentials), so a stored request replayed against a header rule "maybe" matches.
   */
  headers?: Record<string, string>;
  version: string;
  /** The response's status, in events (never matched). */
  status?: number;
}

export interface TlsFacts {
  sni?: string;
  /** The version the server chose (ServerHello); absent before it. */
  version?: string;
  /** The versions the ClientHello offers. */
  offered?: string[];
  /** ALPN ids the ClientHello offers. */
  alpn?: string[];
  /** The ClientHello offers ECH (its `sni` is then the outer, public name). */
  ech?: boolean;
  /** The cipher suite the server chose, by its IANA name. */
  cipher?: string;
  /** Absent until the server's certificate has been seen. */
  certificate?: CertificateFacts;
  /**
   * Facts moat cannot see on this connection: "certificate" (TLS 1.3 and no probe answer),
   * "sni" (ECH hides the inner name). A rule that needs one follows its `unknown`.
   */
  unseen?: ("certificate" | "sni")[];
  /**
   * While the handshake is under way, how a condition on a fact not seen yet (the chosen version,
   * the certificate) counts. The relay judges both ways: equal answers mean it need not wait.
   */
  pending?: "match" | "no-match";
}

export interface CertificateFacts {
  subject_cn: string;
  /** Subject alternative names (DNS names and addresses). */
  sans?: string[];
  /** The issuer's distinguished name, "C=US, O=Example, CN=Example CA". */
  issuer: string;
  /** The chain verifies against the system's CA store and every date is current. */
  valid: boolean;
  /** ISO 8601. */
  not_after?: string;
  /** SHA-256, upper-case colon form. */
  fingerprint?: string;
  /** Seen in the connection's own handshake (TLS <= 1.2) or by moat's probe (TLS 1.3, advisory). */
  source?: "handshake" | "probe";
}

export interface DnsFacts {
  name: string;
  over_tls?: boolean;
}

export interface SshFacts {
  /** The server's version line (egress); absent for a login (moat ssh-authkeys). */
  version?: string;
  /** Absent until the key exchange. */
  host_key?: string;
  /** A login to this host's sshd (moat ssh-authkeys): the login name. */
  user?: string;
  /** A login: the client's public key, "type base64" (a comment after it is ignored). */
  client_key?: string;
}

/** The application protocol seen on the connection: the one key present. */
export interface Layer7Facts {
  http?: HttpFacts;
  tls?: TlsFacts;
  dns?: DnsFacts;
  ssh?: SshFacts;
}

export interface ConnectionFacts {
  /** Who initiated: ingress = the remote peer, egress = this host. */
  direction: "ingress" | "egress";
  protocol: ProtocolFact;
  family: 4 | 6;
  local: EndpointFacts;
  remote: EndpointFacts;
  icmp?: { type: number; code: number };
  /**
   * The first packet's IPv6 hop limit (IPv4 TTL). Neighbour and router discovery pass unjudged
   * only with 255 (docs/datapath.md, "Basic networking"); absent = not 255.
   */
  hopLimit?: number;
  /**
   * A full ProcessFacts from attribution fits; absent fields are unknown. null: no process owns
   * it on this host (a packet the host forwards), so no process section matches.
   */
  process?: KnownProcess | null;
  /** Absent fields are unknown. */
  interface?: Partial<InterfaceFacts>;
  layer7?: Layer7Facts;
}

/** Facts that cannot describe a connection (a bad address, a missing port): the caller's mistake. */
export class FactsError extends Error {
  readonly code = "EFACTS";
  constructor(message: string) {
    super(message);
    this.name = "FactsError";
  }
}

// moat's own TLS handshake with a server, to see the certificate a TLS 1.3 handshake encrypts:
// the same address, port, SNI and ALPN as the client's, no verification (moat only looks).
// Advisory: a server can show moat another certificate than its clients. Cached by (address,
// port, SNI); a server that does not answer within the timeout gives "unknown" (null).

import { isIP, type Socket } from "node:net";
import { connect, type TLSSocket } from "node:tls";
import type { X509Certificate } from "node:crypto";
import type { CertificateFacts } from "../../policy/facts.ts";
import { certificateFacts, systemTrust } from "./certificate-facts.ts";

export interface ProbeOptions {
  timeoutMs?: number;
  /** How long a certificate seen is reused. */
  ttlMs?: number;
  /** How long a failed probe is remembered (so a silent server costs one timeout, not one each). */
  failureTtlMs?: number;
  /** At most this many cached servers; the oldest go first. */
  maxEntries?: number;
  trust?: () => X509Certificate[];
}

export interface ProbeTarget {
  ip: string;
  port: number;
  sni?: string;
  alpn: string[];
}

interface Entry {
  facts: Promise<CertificateFacts | null>;
  expires: number;
}

export class CertificateProbe {
  private readonly cache = new Map<string, Entry>();
  private readonly timeoutMs: number;
  private readonly ttlMs: number;
  private readonly failureTtlMs: number;
  private readonly maxEntries: number;
  private readonly trust: () => X509Certificate[];

  constructor(options: ProbeOptions = {}) {
    this.timeoutMs = options.timeoutMs ?? 3000;
    this.ttlMs = options.ttlMs ?? 10 * 60_000;
    this.failureTtlMs = options.failureTtlMs ?? 30_000;
    this.maxEntries = options.maxEntries ?? 4096;
    this.trust = options.trust ?? systemTrust;
  }

  /** The server's certificate, from the cache or a fresh probe over `open()`; null = unknown. */
  certificate(target: ProbeTarget, open: () => Promise<Socket>): Promise<CertificateFacts | null> {
    const key = `${target.ip}|${target.port}|${target.sni ?? ""}`;
    const now = Date.now();
    const hit = this.cache.get(key);
    if (hit && hit.expires > now) return hit.facts;
    this.cache.delete(key);
    if (this.cache.size >= this.maxEntries) {
      const oldest = this.cache.keys().next().value;
      if (oldest !== undefined) this.cache.delete(oldest);
    }
    const entry: Entry = { facts: this.probe(target, open), expires: now + this.timeoutMs };
    this.cache.set(key, entry);
    void entry.facts.then((facts) => {
      entry.expires = Date.now() + (facts ? this.ttlMs : this.failureTtlMs);
    });
    return entry.facts;
  }

  private async probe(
    target: ProbeTarget,
    open: () => Promise<Socket>,
  ): Promise<CertificateFacts | null> {
    const sockets: Socket[] = [];
    let over = false;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<null>((resolve) => {
      timer = setTimeout(() => resolve(null), this.timeoutMs);
    });
    const handshake = async (): Promise<CertificateFacts> => {
      const raw = await open();
      raw.on("error", () => {}); // a probe's failure is its null answer
      sockets.push(raw);
      if (over) {
        raw.destroy(); // the probe gave up while this connection was opening
        throw new Error("probe timed out");
      }
      const tls = connect({
        socket: raw,
        rejectUnauthorized: false,
        ...(target.sni && isIP(target.sni) === 0 ? { servername: target.sni } : {}),
        ...(target.alpn.length > 0 ? { ALPNProtocols: target.alpn } : {}),
      });
      tls.on("error", () => {});
      sockets.push(tls);
      await new Promise<void>((resolve, reject) => {
        tls.once("secureConnect", resolve);
        tls.once("error", reject);
        tls.once("close", () => reject(new Error("closed during the handshake")));
      });
      return certificateFacts(peerChain(tls), "probe", this.trust());
    };
    try {
      return await Promise.race([handshake().catch(() => null), timeout]);
    } finally {
      over = true;
      clearTimeout(timer);
      // the TLS socket owns the TCP one once wrapped; destroying the TCP socket and then the
      // TLS one crashes Node 24.21 (SIGSEGV), so only the outermost is destroyed
      sockets.at(-1)?.destroy();
    }
  }
}

/** The chain the server sent, leaf first, as DER. */
function peerChain(socket: TLSSocket): Buffer[] {
  const chain: Buffer[] = [];
  let cert = socket.getPeerCertificate(true);
  const seen = new Set<string>();
  while (cert.raw && !seen.has(cert.fingerprint256) && chain.length < 8) {
    seen.add(cert.fingerprint256);
    chain.push(cert.raw);
    cert = cert.issuerCertificate;
    if (!cert) break;
  }
  return chain;
}

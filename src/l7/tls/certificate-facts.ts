// A server's certificate chain (DER, leaf first) -> the facts rules match: subject CN, SANs,
// issuer, whether the chain verifies against the trust store with every date current, expiry and
// SHA-256 fingerprint. node:crypto's X509Certificate does the parsing and signature checks.

import { X509Certificate } from "node:crypto";
import { getCACertificates } from "node:tls";
import type { CertificateFacts } from "../../policy/facts.ts";

/** A chain longer than this is not followed (real ones have 2-4 certificates). */
const MAX_DEPTH = 8;

let systemRoots: X509Certificate[] | null = null;

/** The system's CA store (what `valid` means), parsed once. */
export function systemTrust(): X509Certificate[] {
  systemRoots ??= getCACertificates("system").map((pem) => new X509Certificate(pem));
  return systemRoots;
}

/** Throws if the leaf is not a certificate (a caller treats that as "certificate not seen"). */
export function certificateFacts(
  chain: Buffer[],
  source: "handshake" | "probe",
  trust: X509Certificate[] = systemTrust(),
  now = new Date(),
): CertificateFacts {
  const [leafDer, ...rest] = chain;
  if (!leafDer) throw new Error("empty certificate chain");
  const leaf = new X509Certificate(leafDer);
  const others = rest.flatMap((der) => {
    try {
      return [new X509Certificate(der)];
    } catch {
      return []; // an unreadable intermediate cannot help the chain verify
    }
  });
  return {
    subject_cn: nameParts(leaf.subject).find(([k]) => k === "CN")?.[1] ?? "",
    sans: subjectAltNames(leaf.subjectAltName),
    issuer: nameParts(leaf.issuer)
      .map(([k, v]) => `${k}=${v}`)
      .join(", "),
    valid: verifies(leaf, others, trust, now),
    not_after: leaf.validToDate.toISOString(),
    fingerprint: leaf.fingerprint256,
    source,
  };
}

/** "C=US\nO=Example\nCN=Example CA" -> [["C","US"], ...] */
function nameParts(name: string): [string, string][] {
  return name
    .split("\n")
    .filter(Boolean)
    .map((line) => {
      const at = line.indexOf("=");
      return [line.slice(0, at), line.slice(at + 1)];
    });
}

/** "DNS:a.example, IP Address:192.0.2.1" -> ["a.example", "192.0.2.1"] (names and addresses). */
function subjectAltNames(text: string | undefined): string[] {
  if (!text) return [];
  return text
    .split(/,\s*/)
    .filter((entry) => entry.startsWith("DNS:") || entry.startsWith("IP Address:"))
    .map((entry) => entry.slice(entry.indexOf(":") + 1));
}

const indexes = new WeakMap<X509Certificate[], Map<string, X509Certificate[]>>();

/** The trust store by subject name, so a chain's end is found without trying every root. */
function bySubject(trust: X509Certificate[]): Map<string, X509Certificate[]> {
  let index = indexes.get(trust);
  if (!index) {
    index = new Map();
    for (const c of trust) index.set(c.subject, [...(index.get(c.subject) ?? []), c]);
    indexes.set(trust, index);
  }
  return index;
}

const current = (c: X509Certificate, now: Date) => c.validFromDate <= now && now <= c.validToDate;

/** Each certificate signed by the next (an intermediate the server sent, or a trusted root). */
function verifies(
  leaf: X509Certificate,
  intermediates: X509Certificate[],
  trust: X509Certificate[],
  now: Date,
): boolean {
  let cert = leaf;
  for (let depth = 0; depth < MAX_DEPTH; depth++) {
    if (!current(cert, now)) return false;
    const signedBy = (c: X509Certificate) => cert.checkIssued(c) && cert.verify(c.publicKey);
    const root = bySubject(trust).get(cert.issuer)?.find(signedBy);
    if (root) return current(root, now);
    const next = intermediates.find((c) => c !== cert && c.ca && signedBy(c));
    if (!next) return false;
    cert = next;
  }
  return false;
}

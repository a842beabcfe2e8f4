// layer7: the application protocol seen by moat's proxy. A rule's layer7 names one or more
// protocols; the connection matches the sub-section of its own protocol, and no other.
//
// DNS is told by ports (docs/policy.md, "Names"): a query moat's DNS proxy judges by its name is
// sent to port 53 (UDP or TCP); DNS over TLS is TCP port 853, and `over_tls` is decided by the
// ports alone, with or without layer7 facts.

import {
  PROTOCOL_NUMBERS,
  type DnsMatch,
  type HttpMatch,
  type Layer7Match,
} from "../config/model.ts";
import type { SshMatch, TlsMatch } from "../config/model.ts";
import type { HttpFacts, Layer7Facts, SshFacts, TlsFacts } from "./facts.ts";
import { globMatch, hostMatch } from "./glob.ts";
import type { TransportFacts } from "./match-layer4.ts";
import { all, any, maybe, no, yes, type Outcome } from "./tri.ts";

const check = (ok: boolean, because: string): Outcome => (ok ? yes(because) : no());

export function matchLayer7(
  rule: Layer7Match,
  facts: Layer7Facts | undefined,
  transport: TransportFacts,
  /** The names this identity resolved to the remote address; absent = unknown. */
  remoteNames?: readonly string[],
): Outcome {
  const parts: Outcome[] = [];
  const seen = <T>(fact: T | undefined, match: (f: T) => Outcome): Outcome =>
    !facts ? maybe("layer7") : fact ? match(fact) : no();
  if (rule.http) parts.push(seen(facts?.http, (f) => matchHttp(rule.http ?? {}, f, remoteNames)));
  if (rule.tls) parts.push(seen(facts?.tls, (f) => matchTls(rule.tls ?? {}, f, remoteNames)));
  if (rule.dns) parts.push(matchDns(rule.dns, facts, transport));
  if (rule.ssh) parts.push(seen(facts?.ssh, (f) => matchSsh(rule.ssh ?? {}, f)));
  return any(parts);
}

/**
 * A name the client sent (Host, SNI) is not taken on trust: it counts only when this identity
 * resolved exactly that name to the address (docs/l7.md, "Names are not taken on trust").
 */
function resolved(name: string, names: readonly string[] | undefined, trust: boolean): Outcome {
  if (trust) return yes("taken as sent");
  if (!names) return maybe(`DNS names of the remote address`);
  const n = name.toLowerCase().replace(/\.$/, "");
  return check(names.includes(n), `${n} resolved to the address`);
}

function matchHttp(rule: HttpMatch, f: HttpFacts, names?: readonly string[]): Outcome {
  // the port, empty ones too (`evil.example:` is evil.example)
  const host = f.host.replace(/:\d*$/, "");
  const headers = f.headers
    ? new Map(Object.entries(f.headers).map(([k, v]) => [k.toLowerCase(), v]))
    : undefined;
  const parts: Outcome[] = [];
  if (rule.host)
    parts.push(
      check(
        rule.host.some((p) => hostMatch(p, host)),
        `http host ${host}`,
      ),
      resolved(host, names, rule.trust_host === true),
    );
  if (rule.method)
    parts.push(check(rule.method.includes(f.method.toUpperCase()), `http method ${f.method}`));
  if (rule.path)
    parts.push(
      check(
        rule.path.some((g) => globMatch(g, f.path)),
        `http path ${f.path}`,
      ),
    );
  for (const [name, glob] of Object.entries(rule.headers ?? {})) {
    if (!headers) {
      parts.push(maybe("HTTP headers"));
      continue;
    }
    const value = headers.get(name);
    parts.push(check(value !== undefined && globMatch(glob, value), `header ${name}: ${value}`));
  }
  if (rule.version) parts.push(check(rule.version.includes(f.version), `HTTP/${f.version}`));
  return all(parts);
}

function matchTls(rule: TlsMatch, f: TlsFacts, names?: readonly string[]): Outcome {
  const parts: Outcome[] = [];
  if (rule.sni) {
    const sni = f.sni;
    const named = check(
      sni !== undefined && rule.sni.some((p) => hostMatch(p, sni)),
      `tls sni ${sni}`,
    );
    parts.push(named.result === "no" && f.unseen?.includes("sni") ? unseen(rule, "sni") : named);
    if (sni !== undefined) parts.push(resolved(sni, names, rule.trust_sni === true));
  }
  if (rule.version) parts.push(tlsVersionOutcome(rule.version, f));
  if (rule.alpn) {
    const offered = f.alpn;
    parts.push(
      offered === undefined
        ? maybe("ALPN")
        : check(
            offered.some((id) => rule.alpn?.includes(id)),
            `ALPN ${offered.join(",")}`,
          ),
    );
  }
  if (rule.ech !== undefined)
    parts.push(
      f.ech === undefined
        ? maybe("ECH")
        : check(f.ech === rule.ech, `ECH ${f.ech ? "offered" : "not offered"}`),
    );
  if (rule.certificate) parts.push(tlsCertificateOutcome(rule, f));
  return all(parts);
}

/** A fact moat cannot see counts as a match when the rule's `unknown` is its action. */
function unseen(rule: TlsMatch, what: string): Outcome {
  const lean = rule.unknown ?? "block";
  return rule.unseenMatches ? yes(`${what} cannot be seen (unknown: ${lean})`) : no();
}

/** A fact the handshake has not shown yet: maybe, or as `pending` says. */
function notYet(f: TlsFacts, what: string, because: string): Outcome {
  if (f.pending === "match") return yes(because);
  if (f.pending === "no-match") return no();
  return maybe(what);
}

/** The chosen version, else the offered ones when they all agree. */
function tlsVersionOutcome(wanted: NonNullable<TlsMatch["version"]>, f: TlsFacts): Outcome {
  const fits = (v: string) => wanted.some((w) => compareVersion(v, w.op, w.version));
  if (f.version !== undefined) return check(fits(f.version), `TLS ${f.version}`);
  const offered = f.offered ?? [];
  const fitting = offered.filter(fits);
  const because = `TLS ${offered.join(",")} offered`;
  if (offered.length > 0 && fitting.length === offered.length) return yes(because);
  if (offered.length > 0 && fitting.length === 0) return no();
  return notYet(f, "TLS version", because);
}

const DAY_MS = 86_400_000;

function tlsCertificateOutcome(rule: TlsMatch, f: TlsFacts): Outcome {
  const want = rule.certificate ?? {};
  const c = f.certificate;
  if (!c) {
    if (f.unseen?.includes("certificate")) return unseen(rule, "certificate");
    return notYet(f, "server certificate", "server certificate (pending)");
  }
  const parts: Outcome[] = [];
  const about = `certificate ${c.subject_cn} from ${c.issuer}`;
  const ok =
    (want.subject_cn === undefined || globMatch(want.subject_cn, c.subject_cn, true)) &&
    (want.issuer === undefined || issuerMatch(want.issuer, c.issuer)) &&
    (want.valid === undefined || want.valid === c.valid);
  parts.push(check(ok, about));
  if (want.san) {
    const sans = c.sans;
    parts.push(
      sans === undefined
        ? maybe("certificate SANs")
        : check(
            sans.some((n) => want.san?.some((g) => globMatch(g, n, true))),
            `SAN ${sans.join(",")}`,
          ),
    );
  }
  if (want.not_after) {
    const end = c.not_after === undefined ? NaN : Date.parse(c.not_after);
    const left = (end - Date.now()) / DAY_MS;
    const { op, days } = want.not_after;
    parts.push(
      Number.isNaN(end)
        ? maybe("certificate expiry")
        : check(op === "<" ? left < days : left > days, `expires ${c.not_after}`),
    );
  }
  if (want.fingerprint) {
    const fp = c.fingerprint?.toUpperCase();
    parts.push(
      fp === undefined
        ? maybe("certificate fingerprint")
        : check(want.fingerprint.includes(fp), `fingerprint ${fp}`),
    );
  }
  return all(parts);
}

/** The issuer glob against the whole name or any one of its parts ("O=Example" -> "Example"). */
function issuerMatch(glob: string, issuer: string): boolean {
  const values = issuer.split(/,\s*/).map((part) => part.replace(/^[A-Za-z.0-9]+=/, ""));
  return [issuer, ...values].some((text) => globMatch(glob, text));
}

/** TLS versions "1.0".."1.3" compare by their minor number. */
function compareVersion(actual: string, op: string, wanted: string): boolean {
  const a = Number(actual.split(".")[1] ?? NaN);
  const w = Number(wanted.split(".")[1] ?? NaN);
  switch (op) {
    case ">=":
      return a >= w;
    case "<=":
      return a <= w;
    case ">":
      return a > w;
    case "<":
      return a < w;
    default:
      return a === w;
  }
}

const DNS_PORT = 53;
const DOT_PORT = 853;

/** What the ports say a connection is: a plain DNS exchange, DNS over TLS, or neither. */
function dnsKind(t: TransportFacts): "plain" | "tls" | null {
  const ported = t.protocol === PROTOCOL_NUMBERS.tcp || t.protocol === PROTOCOL_NUMBERS.udp;
  if (ported && t.serverPort === DNS_PORT) return "plain";
  if (t.protocol === PROTOCOL_NUMBERS.tcp && t.serverPort === DOT_PORT) return "tls";
  return null;
}

function matchDns(rule: DnsMatch, facts: Layer7Facts | undefined, t: TransportFacts): Outcome {
  const kind = dnsKind(t);
  const proto = t.protocol === PROTOCOL_NUMBERS.tcp ? "tcp" : "udp";
  if (kind === "tls") {
    // names inside TLS are never seen (a rule with both is refused at load)
    if (rule.over_tls === false || rule.name) return no();
    return yes(`DNS over TLS (tcp port ${DOT_PORT})`);
  }
  if (kind !== "plain" || rule.over_tls === true) return no();
  if (!rule.name) return yes(`plain DNS (${proto} port ${DNS_PORT})`);
  const query = facts?.dns;
  if (!query) return facts ? no() : maybe("DNS query name");
  return check(
    rule.name.some((p) => hostMatch(p, query.name)),
    `dns query ${query.name}`,
  );
}

function matchSsh(rule: SshMatch, f: SshFacts): Outcome {
  const parts: Outcome[] = [];
  const known = <T>(fact: T | undefined, what: string, test: (v: T) => Outcome) =>
    parts.push(fact === undefined ? maybe(what) : test(fact));
  if (rule.version)
    known(f.version, "ssh version", (v) =>
      check(rule.version?.some((g) => globMatch(g, v)) ?? false, `ssh ${v}`),
    );
  if (rule.host_key)
    known(f.host_key, "ssh host key", (k) =>
      check(rule.host_key?.includes(k) ?? false, `host key ${k}`),
    );
  if (rule.user)
    known(f.user, "ssh login name", (u) =>
      check(rule.user?.some((g) => globMatch(g, u)) ?? false, `ssh login ${u}`),
    );
  if (rule.client_key)
    known(f.client_key, "ssh client key", (text) => {
      const [type, key] = text.trim().split(/\s+/);
      const hit = rule.client_key?.find((c) => c.type === type && c.key === key);
      return check(
        hit !== undefined,
        `client key ${type} ${hit?.comment || (key ?? "").slice(-12)}`,
      );
    });
  return all(parts);
}

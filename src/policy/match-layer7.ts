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
): Outcome {
  const parts: Outcome[] = [];
  const seen = <T>(fact: T | undefined, match: (f: T) => Outcome): Outcome =>
    !facts ? maybe("layer7") : fact ? match(fact) : no();
  if (rule.http) parts.push(seen(facts?.http, (f) => matchHttp(rule.http ?? {}, f)));
  if (rule.tls) parts.push(seen(facts?.tls, (f) => matchTls(rule.tls ?? {}, f)));
  if (rule.dns) parts.push(matchDns(rule.dns, facts, transport));
  if (rule.ssh) parts.push(seen(facts?.ssh, (f) => matchSsh(rule.ssh ?? {}, f)));
  return any(parts);
}

function matchHttp(rule: HttpMatch, f: HttpFacts): Outcome {
  const host = f.host.replace(/:\d+$/, "");
  const headers = new Map(Object.entries(f.headers).map(([k, v]) => [k.toLowerCase(), v]));
  const parts: Outcome[] = [];
  if (rule.host)
    parts.push(
      check(
        rule.host.some((p) => hostMatch(p, host)),
        `http host ${host}`,
      ),
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
    const value = headers.get(name);
    parts.push(check(value !== undefined && globMatch(glob, value), `header ${name}: ${value}`));
  }
  if (rule.version) parts.push(check(rule.version.includes(f.version), `HTTP/${f.version}`));
  return all(parts);
}

function matchTls(rule: TlsMatch, f: TlsFacts): Outcome {
  const parts: Outcome[] = [];
  if (rule.sni) {
    const sni = f.sni;
    parts.push(
      check(sni !== undefined && rule.sni.some((p) => hostMatch(p, sni)), `tls sni ${sni}`),
    );
  }
  if (rule.version)
    parts.push(
      check(
        rule.version.some((v) => compareVersion(f.version, v.op, v.version)),
        `TLS ${f.version}`,
      ),
    );
  const cert = rule.certificate;
  if (cert) {
    const c = f.certificate;
    if (!c) parts.push(maybe("server certificate"));
    else {
      const ok =
        (cert.subject_cn === undefined || globMatch(cert.subject_cn, c.subject_cn, true)) &&
        (cert.issuer === undefined || globMatch(cert.issuer, c.issuer)) &&
        (cert.valid === undefined || cert.valid === c.valid);
      parts.push(check(ok, `certificate ${c.subject_cn} from ${c.issuer}`));
    }
  }
  return all(parts);
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

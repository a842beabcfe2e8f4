// layer7: the application protocol seen by moat's proxy. A rule's layer7 names one or more
// protocols; the connection matches the sub-section of its own protocol, and no other.

import type { DnsMatch, HttpMatch, Layer7Match, SshMatch, TlsMatch } from "../config/model.ts";
import type { DnsFacts, HttpFacts, Layer7Facts, SshFacts, TlsFacts } from "./facts.ts";
import { globMatch, hostMatch } from "./glob.ts";
import { all, any, maybe, no, yes, type Outcome } from "./tri.ts";

const check = (ok: boolean, because: string): Outcome => (ok ? yes(because) : no());

export function matchLayer7(rule: Layer7Match, facts: Layer7Facts | undefined): Outcome {
  if (!facts) return maybe("layer7");
  const parts: Outcome[] = [];
  if (rule.http) parts.push(facts.http ? matchHttp(rule.http, facts.http) : no());
  if (rule.tls) parts.push(facts.tls ? matchTls(rule.tls, facts.tls) : no());
  if (rule.dns) parts.push(facts.dns ? matchDns(rule.dns, facts.dns) : no());
  if (rule.ssh) parts.push(facts.ssh ? matchSsh(rule.ssh, facts.ssh) : no());
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

function matchDns(rule: DnsMatch, f: DnsFacts): Outcome {
  const parts: Outcome[] = [];
  if (rule.name)
    parts.push(
      check(
        rule.name.some((p) => hostMatch(p, f.name)),
        `dns query ${f.name}`,
      ),
    );
  if (rule.over_tls !== undefined)
    parts.push(
      check(rule.over_tls === (f.over_tls ?? false), f.over_tls ? "DNS over TLS" : "plain DNS"),
    );
  return all(parts);
}

function matchSsh(rule: SshMatch, f: SshFacts): Outcome {
  const parts: Outcome[] = [];
  if (rule.version)
    parts.push(
      check(
        rule.version.some((g) => globMatch(g, f.version)),
        `ssh ${f.version}`,
      ),
    );
  if (rule.host_key) {
    const key = f.host_key;
    if (key === undefined) parts.push(maybe("ssh host key"));
    else parts.push(check(rule.host_key.includes(key), `host key ${key}`));
  }
  return all(parts);
}

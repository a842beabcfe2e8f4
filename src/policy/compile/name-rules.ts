// Rules with names, rewritten for each table image (docs/classifier.md, "Names"):
// - a hostname entry matches no address in the packet and socket images (0, 1): there the rule
//   keeps its address entries only (none left: it matches nothing);
// - in the names image (3) the rule's remote list becomes the name classes its patterns reach, as
//   fake IPv4 addresses 0.0.0.N; every other rule matches nothing there. A mixed list is the OR of
//   both images: the kernel takes the first rule either finds.
// - layer7.dns: `over_tls` is a matter of ports (true: tcp 853, false: udp/tcp 53); a rule naming
//   queries (`name`) matches DNS connections (port 53) whose queries moat's DNS proxy judges.

import type {
  AddressEntry,
  AddressList,
  IntervalEntry,
  Layer4,
  PortRange,
  Rule,
  SourcePos,
} from "../../config/model.ts";
import { CompileError } from "./errors.ts";
import { namesHosts, rulePatterns, type NameClasses } from "./names.ts";

/** Everything minus everything: an address list no address is in. */
export function nothing(pos: SourcePos): AddressList {
  const entry = (family: 4 | 6, end: bigint) => ({
    kind: "interval" as const,
    text: "!*",
    negate: true,
    pos,
    family,
    start: 0n,
    end,
  });
  return { entries: [entry(4, (1n << 32n) - 1n), entry(6, (1n << 128n) - 1n)], pos };
}

/** The rule matching nothing (its process and interface sections gone too). */
export function unmatchable(r: Rule): Rule {
  const out: Rule = { ...r, layer3: { remote: nothing(r.pos), pos: r.pos } };
  delete out.process;
  delete out.interface;
  delete out.layer7;
  return out;
}

/** The entries without hostnames (a set left with none is dropped: it named no address). */
function withoutHostnames(entries: readonly AddressEntry[]): AddressEntry[] {
  return entries.flatMap((e): AddressEntry[] => {
    if (e.kind === "hostname") {
      if (e.negate) throw new CompileError("EPOLICYUNSUPPORTED", `'${e.text}': a negated hostname`);
      return [];
    }
    if (e.kind !== "set") return [e];
    const inner = withoutHostnames(e.entries);
    return inner.length === 0 ? [] : [{ ...e, entries: inner }];
  });
}

/** Images 0 and 1: a rule naming hosts keeps its address entries, or matches nothing. */
export function addressOnly(r: Rule): Rule {
  const remote = r.layer3?.remote;
  if (!remote || !namesHosts(r)) return r;
  const entries = withoutHostnames(remote.entries);
  if (!entries.some((e) => !e.negate)) return unmatchable(r);
  return { ...r, layer3: { ...r.layer3!, remote: { ...remote, entries } } };
}

/** Runs of class numbers as IPv4 intervals 0.0.0.N (the kernel's fake remote address). */
function fakeAddresses(classes: readonly number[], pos: SourcePos): IntervalEntry[] {
  const out: IntervalEntry[] = [];
  for (const c of classes) {
    const last = out.at(-1);
    if (last && last.end === BigInt(c) - 1n) last.end = BigInt(c);
    else
      out.push({
        kind: "interval",
        text: `name class ${c}`,
        negate: false,
        pos,
        family: 4,
        start: BigInt(c),
        end: BigInt(c),
      });
  }
  return out;
}

/** Image 3: the rule's hostnames as the classes they reach; any other rule matches nothing. */
export function namesRule(r: Rule, classes: NameClasses): Rule {
  if (!namesHosts(r)) return unmatchable(r);
  const reached = classes.classesMatching(rulePatterns(r));
  if (reached.length === 0) return unmatchable(r);
  const remote: AddressList = { entries: fakeAddresses(reached, r.pos), pos: r.pos };
  return { ...r, layer3: { ...r.layer3!, remote } };
}

/** Ranges of `ports` (absent: any) that hold `port`, as [port]; null when none does. */
function onlyPort(
  ports: PortRange[] | undefined,
  port: number,
  pos: SourcePos,
): PortRange[] | null {
  if (ports && !ports.some((p) => p.lo <= port && port <= p.hi)) return null;
  return [{ lo: port, hi: port, text: String(port), pos }];
}

const TCP = 6;
const UDP = 17;

/**
 * layer7.dns as ports: over_tls true is tcp 853, anything else udp/tcp 53 (plain DNS, where
 * moat's proxy sees the queries). `layer7` in the result: the rule names queries (`name`), which
 * the proxy decides. Other layer7 sections are left for compile() to refuse.
 */
export function dnsAsPorts(r: Rule): { rule: Rule; layer7: boolean } {
  const dns = r.layer7?.dns;
  if (!dns || r.layer7?.http || r.layer7?.tls || r.layer7?.ssh) return { rule: r, layer7: false };
  const tls = dns.over_tls === true;
  const layer4: Layer4 = { ...(r.layer4 ?? { protocol: null, pos: r.pos }) };
  const protocol = layer4.protocol;
  const ports = onlyPort(layer4.ports, tls ? 853 : 53, r.pos);
  const rule: Rule = { ...r };
  delete rule.layer7;
  const fits = protocol === null || protocol === TCP || (!tls && protocol === UDP);
  if (!ports || !fits) return { rule: unmatchable(rule), layer7: false };
  layer4.ports = ports;
  if (tls) layer4.protocol = TCP;
  rule.layer4 = layer4;
  return { rule, layer7: !!dns.name };
}

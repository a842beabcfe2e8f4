// A policy -> what the kernel loads: the packet hooks' tables and, when rules name processes, the
// socket hooks' own tables plus the process classes (docs/socket-hooks.md).
//
// Packet hooks never know the process (nor judge by interface), so for them a process or
// interface rule matches nothing. The socket hooks know both but not the client port (connect()
// runs before it is chosen), so for them such a rule's client ports become the classes it matches
// (compile/process.ts): the kernel passes the caller's class where a packet's client port would
// go. Rule indexes are the same in both.

import { sshLoginsAside } from "./ssh-login-rules.ts";
import { judgedBasics } from "../network-basics.ts";
import { withImplicitRules } from "../implicit-rules.ts";
import { perModel } from "../per-model.ts";
import { usesNames } from "../uses-names.ts";
import { relayRule } from "../layer7-support.ts";
import type { Layer4, PolicyModel, Redirect, Rule, SourcePos } from "../../config/model.ts";
import { compile, firstIngressRules, type CompileOptions, type KnownFields } from "./compile.ts";
import type { ClassifierImage } from "./image.ts";
import type { PolicyImage } from "./kernel-image.ts";
import { addressOnly, dnsAsPorts, namesRule, unmatchable } from "./name-rules.ts";
import { nameClassesOf, namesHosts } from "./names.ts";
import { compileProcess, socketRule, type ProcessUniverse } from "./process.ts";
import { redirectModel, redirectTargets, withRedirects } from "./redirect.ts";

/** Where moat's DNS proxy listens (the implicit redirect of DNS queries, docs/redirect.md). */
export interface DnsProxyTargets {
  udp: { ip: string; port: number };
  tcp: { ip: string; port: number };
}

export interface PolicyCompileOptions extends CompileOptions {
  /** When the policy uses names: DNS queries (udp/tcp 53, egress) go there first. */
  dnsProxy?: DnsProxyTargets;
  /** Where moat's L7 relay listens: connections L7 rules could match go there (docs/l7.md). */
  l7Relay?: { ip: string; port: number };
  /** Entries a folded process combination table may have (process.ts, FOLD_LIMIT); 0 folds no
   * step: the kernel looks up all four tables. */
  processFoldLimit?: number;
}

/** The name of the implicit redirects of DNS queries to moat's DNS proxy. */
export const DNS_PROXY_REDIRECT = "dns-proxy";

/** The name of the implicit redirects of connections L7 rules judge to moat's relay. */
export const L7_RELAY_REDIRECT = "l7-relay";

/** A rule moat's relay judges (relayRule; a rule without layer7 never is). */
const relays = (r: Rule): boolean => r.layer7 != null && relayRule(r);

/** Rules the packet hooks cannot judge at all: who or where, or DNS queries by name. */
const packetBlind = (r: Rule): boolean => !!(r.process || r.interface);

/** The rules as the packet hooks judge them (names and layer7 already rewritten). */
export function packetModel(
  model: PolicyModel,
  layer7: ReadonlySet<number> = new Set(),
): PolicyModel {
  if (!model.rules.some((r) => packetBlind(r) || namesHosts(r) || layer7.has(r.index)))
    return model;
  return {
    ...model,
    rules: model.rules.map((r) =>
      packetBlind(r) || layer7.has(r.index) ? unmatchable(r) : addressOnly(r),
    ),
  };
}

/** Runs of consecutive class numbers as client-port ranges. */
function asPorts(classes: number[], pos: SourcePos): NonNullable<Layer4["sourcePorts"]> {
  const out: NonNullable<Layer4["sourcePorts"]> = [];
  for (const c of classes) {
    const last = out.at(-1);
    if (last && last.hi === c - 1) last.hi = c;
    else out.push({ lo: c, hi: c, text: `process class ${c}`, pos });
  }
  return out;
}

/** The rules as the socket hooks judge them: the process class in the client-port slot. */
function socketModel(model: PolicyModel, classesOf: Map<number, number[]>): PolicyModel {
  const rules = model.rules.map((r): Rule => {
    // a client port is unknown at connect(): decisions that need one wait for the packet hooks
    if (!socketRule(r) && !r.layer4?.sourcePorts) return r;
    const layer4: Layer4 = { ...(r.layer4 ?? { protocol: null, pos: r.pos }) };
    delete layer4.sourcePorts;
    if (!socketRule(r)) return { ...r, layer4 };
    // with the any-process classes (docs/socket-hooks.md, "The accept side")
    const classes = [...(classesOf.get(r.index) ?? [])].sort((x, y) => x - y);
    if (classes.length === 0) return unmatchable(r);
    const out: Rule = { ...r, layer4: { ...layer4, sourcePorts: asPorts(classes, r.pos) } };
    delete out.process;
    delete out.interface;
    return out;
  });
  return { ...model, rules };
}

/** Whether rules or redirects name processes, interfaces or names (then a universe is needed). */
export const namesProcesses = perModel((model: PolicyModel): boolean =>
  withRedirects(withImplicitRules(model)).rules.some(socketRule),
);

const NOWHERE: SourcePos = { file: "", line: 0, col: 0, path: "" };

/** The two redirects of DNS queries to the proxy (udp, tcp), before the policy's own. */
function withDnsRedirects(model: PolicyModel, to: DnsProxyTargets): PolicyModel {
  const dns = (protocol: 6 | 17, target: { ip: string; port: number }): Redirect => ({
    direction: "egress",
    name: DNS_PROXY_REDIRECT,
    layer4: { protocol, ports: [{ lo: 53, hi: 53, text: "53", pos: NOWHERE }], pos: NOWHERE },
    to: { ip: target.ip, family: target.ip.includes(":") ? 6 : 4, port: target.port },
    onUnavailable: model.failure.helper,
    pos: NOWHERE,
  });
  return { ...model, redirects: [dns(17, to.udp), dns(6, to.tcp), ...model.redirects] };
}

/** A rule moat's relay judges, as the socket hooks see it: its match without layer7, over TCP. */
function relayMatch(r: Rule): Rule {
  const rule: Rule = { ...r, layer4: { ...(r.layer4 ?? { pos: r.pos }), protocol: 6 } };
  delete rule.layer7;
  return rule;
}

/**
 * One quiet redirect to the relay per rule it judges (after the DNS proxy's, before the policy's
 * own): the rule's match without layer7 and hostnames, over TCP. The kernel takes it only when
 * the rule chosen at connect() is an L7 rule (MOAT_RULE_LAYER7), so a connection an earlier rule
 * decides never enters the relay.
 */
function withRelayRedirects(
  model: PolicyModel,
  to: { ip: string; port: number },
  first: number,
): PolicyModel {
  const relayed = model.rules.filter(relays).map((r): Redirect => {
    const m = addressOnly(relayMatch(r));
    const redirect: Redirect = {
      direction: "egress",
      name: L7_RELAY_REDIRECT,
      to: { ip: to.ip, family: to.ip.includes(":") ? 6 : 4, port: to.port },
      onUnavailable: model.failure.helper,
      pos: r.pos,
    };
    // a rule left matching nothing by address (names only) is redirected by its other sections
    if (m.layer3 && !unmatchableList(m)) redirect.layer3 = m.layer3;
    if (m.layer4) redirect.layer4 = m.layer4;
    if (m.process) redirect.process = m.process;
    if (m.interface) redirect.interface = m.interface;
    return redirect;
  });
  if (relayed.length === 0) return model;
  const redirects = [...model.redirects];
  redirects.splice(first, 0, ...relayed);
  return { ...model, redirects };
}

/** addressOnly left the rule's remote list empty of addresses (it named hosts only). */
const unmatchableList = (r: Rule): boolean =>
  r.layer3?.remote?.entries.every((e) => e.negate && e.text === "!*") ?? false;

/** layer7.dns as ports in every rule, L7 rules as their TCP match; the rules flagged layer7. */
function dnsRules(model: PolicyModel): { model: PolicyModel; layer7: Set<number> } {
  const layer7 = new Set<number>();
  // no rule has layer7 (a big file of addresses and ports): the rules as they are, not a copy
  if (!model.rules.some((r) => r.layer7 != null)) return { model, layer7 };
  const rules = model.rules.map((r) => {
    // without layer7 a rule is neither relayed, nor an SSH login's, nor a DNS one: as it is
    if (r.layer7 == null) return r;
    if (relayRule(r)) {
      layer7.add(r.index);
      return relayMatch(r);
    }
    const out = dnsAsPorts(sshLoginsAside(r));
    if (out.layer7) layer7.add(r.index);
    return out.rule;
  });
  return { model: { ...model, rules }, layer7 };
}

const NO_HOST: ProcessUniverse = {
  executables: [],
  users: new Map(),
  cgroups: [],
  routes: { image: { v4: [], v6: [] }, links: [], notes: [] },
};

/**
 * The kernel image of a policy. `universe` (what is on this host) is needed only when rules or
 * redirects name processes; without it they match nothing anywhere.
 */
export function compilePolicy(
  policy: PolicyModel,
  universe: ProcessUniverse | null,
  options: PolicyCompileOptions = {},
): PolicyImage {
  // moat's own rules first (dns:doh), as the evaluator judges them
  const written = withImplicitRules(policy);
  const names = usesNames(written);
  const withDns = names && options.dnsProxy ? withDnsRedirects(written, options.dnsProxy) : written;
  const dnsCount = withDns.redirects.length - written.redirects.length;
  const model = options.l7Relay ? withRelayRedirects(withDns, options.l7Relay, dnsCount) : withDns;
  const relayCount = model.redirects.length - withDns.redirects.length;
  const relayed = written.rules.some(relays);
  const dns = dnsRules(model);
  const flag = (image: ClassifierImage): ClassifierImage => {
    for (const i of dns.layer7) image.rules[i]!.layer7 = true;
    return image;
  };
  const known: KnownFields = {
    // the accept side (docs/socket-hooks.md): from the model as written, process sections and
    // all
    ...firstIngressRules(model),
    // basic networking named by the rules as written (the packet model rewrites source ports)
    basicsJudged: judgedBasics(model),
  };
  const image: PolicyImage = {
    // compile() takes those as known instead of finding them in the packet model
    packet: flag({
      ...compile(packetModel(dns.model, dns.layer7), options, known),
      ...known,
    }),
  };
  // one set of process classes for the rules and the redirects (compile/redirect.ts); names are
  // judged by the socket hooks, which need process classes even when no rule names a process
  // L7 rules are let through at connect() (MOAT_RULE_LAYER7) for the relay to judge
  const host = universe ?? (names || relayed ? NO_HOST : null);
  const proc = host ? compileProcess(withRedirects(model), host, options.processFoldLimit) : null;
  if (proc) {
    const socket = { ...dns.model, rules: dns.model.rules.map(addressOnly) };
    image.socket = {
      image: flag(compile(socketModel(socket, proc.classesOf), options)),
      process: proc,
    };
    const classes = nameClassesOf(model);
    if (classes.count > 0) {
      const only = { ...dns.model, rules: dns.model.rules.map((r) => namesRule(r, classes)) };
      image.names = { image: flag(compile(socketModel(only, proc.classesOf), options)), classes };
    }
  }
  if (model.redirects.length > 0) {
    const targets = redirectTargets(model);
    // moat's DNS proxy: quiet, and served in containers' network namespaces too
    for (let i = 0; i < dnsCount; i++)
      Object.assign(targets[i]!, { quiet: true, everyNetns: true });
    for (let i = dnsCount; i < dnsCount + relayCount; i++) {
      targets[i]!.quiet = true;
      targets[i]!.layer7Only = true;
    }
    image.redirect = {
      image: compile(socketModel(redirectModel(model), proc?.classesOf ?? new Map()), options),
      targets,
    };
  }
  return image;
}

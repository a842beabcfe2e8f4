// Which rules with names moat can enforce (docs/policy.md, "Names"), checked at load so a rule is
// never silently left unenforced: each problem is a diagnostic where it is written.
//
// A hostname entry matches an address a DNS answer gave to the same process (its cgroup,
// executable and user), so it is judged by the socket hooks at connect()/sendmsg(): only for
// connections this host opens, of processes under attach.cgroup, over TCP or UDP. Names and
// addresses are matched by different tables, so one list cannot mix names with exclusions.
import { diagnostic, type Diagnostic } from "../config/diagnostics.ts";
import { isAddressOnly } from "../config/address-only.ts";
import {
  PROTOCOL_NUMBERS,
  type AddressEntry,
  type AddressList,
  type HostnameEntry,
  type Match,
  type PolicyModel,
  type Rule,
} from "../config/model.ts";
import { protocolName } from "./match-layer4.ts";
import { usesNames } from "./uses-names.ts";

/** A hostname in a list: the entry itself, or the set reference that brings it in. */
interface NameUse {
  at: AddressEntry;
  host: HostnameEntry;
}

function namesIn(list: AddressList | undefined): NameUse[] {
  const uses: NameUse[] = [];
  for (const e of list?.entries ?? []) {
    if (e.kind === "hostname") uses.push({ at: e, host: e });
    if (e.kind === "set")
      for (const inner of e.entries)
        if (inner.kind === "hostname") uses.push({ at: e, host: inner });
  }
  return uses;
}

/** Whether namesIn(list) has anything, without making the list. */
function hasNames(list: AddressList | undefined): boolean {
  if (!list) return false;
  for (const e of list.entries) {
    if (e.kind === "hostname") return true;
    if (e.kind !== "set" || isAddressOnly(e.entries)) continue;
    for (const inner of e.entries) if (inner.kind === "hostname") return true;
  }
  return false;
}

/** One use per list entry (a set holding several names is one use). */
function byEntry(uses: NameUse[]): NameUse[] {
  return uses.filter((u, i) => uses.findIndex((v) => v.at === u.at) === i);
}

/** How a message names a use: the entry as written; a set's own lines are not quoted. */
function what(use: NameUse): string {
  return use.at.kind === "set"
    ? `'${use.at.text}' (a set with hostnames)`
    : `hostname '${use.at.text}'`;
}

/** A '!' entry of the list, or inside a set it names: what makes it "names and exclusions". */
function exclusion(list: AddressList): string | undefined {
  for (const e of list.entries) {
    if (e.negate) return `'${e.text}'`;
    if (e.kind === "set" && e.entries.some((inner) => inner.negate))
      return `'${e.text}' (a set with '!' entries)`;
  }
  return undefined;
}

const SOCKET_PROTOCOLS = new Set<number | null>([null, PROTOCOL_NUMBERS.tcp, PROTOCOL_NUMBERS.udp]);

export function nameRuleProblems(model: PolicyModel): Diagnostic[] {
  const out: Diagnostic[] = [];
  const firstLocal = model.rules.find(
    (r) => r.direction !== "ingress" && (r.layer3?.local || r.layer4?.sourcePorts),
  );
  for (const r of model.redirects) {
    for (const use of byEntry([...namesIn(r.layer3?.remote), ...namesIn(r.layer3?.local)]))
      out.push(
        diagnostic(
          use.at.pos,
          `redirect '${r.name}': ${what(use)}: redirects match addresses, not names (hostname entries are for egress rules)`,
        ),
      );
  }
  for (const rule of model.rules) {
    // nothing below finds a problem in a rule without names or layer7.dns (most rules)
    const layer3 = rule.layer3;
    if (!rule.layer7?.dns && !hasNames(layer3?.remote) && !hasNames(layer3?.local)) continue;
    const own = [
      ...localNameProblems(rule),
      ...remoteNameProblems(model, rule),
      ...dnsProblems(model, rule),
    ];
    out.push(...own);
    const socketJudged = namesIn(rule.layer3?.remote).length > 0 || rule.layer7?.dns?.name;
    if (!socketJudged || own.length > 0) continue;
    // connect() and sendmsg() judge names before the kernel picks the local address and port
    const needs = rule.layer3?.local
      ? { pos: rule.layer3.local.pos, what: "local address", field: "local" }
      : rule.layer4?.sourcePorts
        ? { pos: rule.layer4.pos, what: "source port", field: "source_port" }
        : undefined;
    if (needs)
      out.push(
        diagnostic(
          needs.pos,
          `rule '${rule.name}' names hosts and needs the ${needs.what}: names are judged at connect(), which knows neither the local address nor the source port; leave '${needs.field}' out of this rule`,
        ),
      );
    // as process rules (process-support.ts): the socket hooks cannot judge the rule above
    else if (firstLocal && firstLocal.index < rule.index)
      out.push(
        diagnostic(
          firstNamePos(rule),
          `rule '${rule.name}' names hosts after rule '${firstLocal.name}' (line ${firstLocal.pos.line}), which needs the local address or source port: connect() knows neither, so move it above`,
        ),
      );
  }
  return out;
}

function localNameProblems(rule: Rule): Diagnostic[] {
  return byEntry(namesIn(rule.layer3?.local)).map((use) =>
    diagnostic(
      use.at.pos,
      `rule '${rule.name}': ${what(use)} in layer3.local: names are learned for the addresses this host connects to; write them in layer3.remote`,
    ),
  );
}

function firstNamePos(rule: Rule) {
  return rule.layer3?.remote && namesIn(rule.layer3.remote).length > 0
    ? rule.layer3.remote.pos
    : (rule.layer7?.dns?.pos ?? rule.pos);
}

function remoteNameProblems(model: PolicyModel, rule: Rule): Diagnostic[] {
  const list = rule.layer3?.remote;
  const uses = namesIn(list);
  const first = uses[0];
  if (!list || !first) return [];
  const out: Diagnostic[] = [];
  const refuse = (pos: AddressEntry["pos"], message: string) =>
    out.push(diagnostic(pos, `rule '${rule.name}': ${message}`));
  if (rule.direction !== "egress") {
    refuse(
      first.at.pos,
      `${what(first)} in a rule that is not 'direction: egress': names are learned from this host's own lookups, for the connections it opens`,
    );
    return out;
  }
  const negated = byEntry(uses.filter((u) => u.at.negate || u.host.negate));
  const excludes = (u: NameUse) =>
    u.at.kind !== "set"
      ? "excludes a hostname"
      : u.at.negate
        ? "excludes a set with hostnames"
        : "names a set with '!' hostnames";
  for (const use of negated)
    refuse(
      use.at.pos,
      `'${use.at.text}' ${excludes(use)}: moat cannot exclude by name (a name's addresses are known only to the processes that looked it up); put a rule for the name above this one instead`,
    );
  const excluded = exclusion(list);
  if (negated.length === 0 && excluded)
    refuse(
      list.pos,
      `this list has ${what(first)} and exclusion ${excluded}: names and addresses are matched apart, so a list with names cannot have '!' entries; write the names and the addresses in rules of their own`,
    );
  const protocol = rule.layer4?.protocol ?? null;
  if (protocol !== null && !SOCKET_PROTOCOLS.has(protocol)) {
    const name = protocolName(protocol);
    refuse(
      list.pos,
      `hostname entries with ${name.startsWith("protocol") ? name : `protocol ${name}`}: names are matched by the socket hooks, which see TCP and UDP only`,
    );
  }
  if (!model.attach.cgroup)
    refuse(
      list.pos,
      `hostname entries match the addresses a process looked up: set attach.cgroup (e.g. "/") so the socket hooks see its lookups and connections`,
    );
  return out;
}

function dnsProblems(model: PolicyModel, rule: Match & { name: string }): Diagnostic[] {
  const dns = rule.layer7?.dns;
  if (!dns?.pos) return [];
  const out: Diagnostic[] = [];
  const refuse = (message: string) =>
    dns.pos && out.push(diagnostic(dns.pos, `rule '${rule.name}': ${message}`));
  if (rule.direction !== "egress")
    refuse("layer7.dns judges the DNS queries this host sends: use 'direction: egress'");
  if (dns.name && dns.over_tls === true)
    refuse(
      "'name' with 'over_tls: true': moat cannot see the names inside DNS over TLS; write a rule for DNS over TLS without 'name' (or by its server, in layer3.remote)",
    );
  else if (dns.name && !model.attach.cgroup)
    refuse(
      `layer7.dns.name is judged by moat's DNS proxy, for processes under attach.cgroup: set attach.cgroup (e.g. "/")`,
    );
  return out;
}

/** Warnings: what a rule with names does that its writer may not expect. */
export function nameRuleWarnings(model: PolicyModel): Diagnostic[] {
  const out: Diagnostic[] = [];
  for (const rule of model.rules) {
    const list = rule.layer3?.remote;
    if (!list || rule.action !== "block" || !hasNames(list)) continue;
    out.push(
      diagnostic(
        list.pos,
        `rule '${rule.name}' blocks by name: it blocks only the addresses a DNS answer gave to the same process (executable, user, cgroup); an address reached without that lookup (written in a program, cached, looked up by another process) is not blocked; to refuse the lookup itself, use layer7: { dns: { name: [...] } }`,
        "warning",
      ),
    );
  }
  if (model.dns.pos && !usesNames(model))
    out.push(
      diagnostic(
        model.dns.pos,
        "the dns section has no effect: no rule names a host (hostname entries in layer3.remote, or layer7.dns.name)",
        "warning",
      ),
    );
  return out;
}

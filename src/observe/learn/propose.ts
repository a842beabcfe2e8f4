// Least-privilege rules from what identities did: per identity (executable, user, container),
// direction and protocol, the peers it reached on each port, generalised only by the steps in
// generalise.ts among peers seen on the same ports, destinations with the same ports in one
// rule. Only connections the policy left to its defaults are learnt from (a rule already decides
// the rest); connections that were only ever blocked are a decision already made and never
// proposed; a flow first seen within the stability period is held back. A process known only by
// its name (comm) is named by that name and its user, never by a path, unless the name joins an
// executable's; by a name holding a slash, not at all (identity.ts). Caps bound the work
// whatever the history holds.
import type { PolicyModel } from "../../config/model.ts";
import { parseIp } from "../../config/ip.ts";
import { parseHostname } from "../../config/address-entry.ts";
import {
  generalisePeers,
  portRanges,
  type Destination,
  type GeneraliseOptions,
} from "./generalise.ts";
import { identityKey, type LearnRow } from "./learn-rows.ts";
import {
  decidedBy,
  expressible,
  nameKey,
  pathLikeName,
  pathsByName,
  PORTED,
  processSection,
  slugOf,
  type Identity,
} from "./identity.ts";

export type { Identity };

/** Identities proposed for at most (most connections first). */
export const MAX_IDENTITIES = 500;
/** Destination entries (after generalising) per identity, direction and protocol at most. */
export const MAX_DESTINATIONS = 200;
/**
 * Rules proposed at most, each identity's all or none (most connections first): one hostile
 * user's executables, each reaching many peers on ports of their own, would make a diff of
 * millions of lines.
 */
export const MAX_RULES = 5000;

export interface ProposeOptions extends GeneraliseOptions {
  now: number;
  /** A flow is learnt from only once first seen at least this long ago. */
  stableMs: number;
}

/** A rule to add, with what justified it. */
export interface ProposedRule {
  name: string;
  identity: Identity;
  direction: "ingress" | "egress";
  action: "allow" | "block";
  /** The YAML the rule is written as (mode: detect). */
  yaml: Record<string, unknown>;
  /** Connections it would have decided, first and last seen, processes behind them. */
  hits: number;
  firstMs: number;
  lastMs: number;
  processes: number;
  /** Each widening step, in words. */
  because: string[];
  /** The roll-up rows it stands for (the replay check judges them). */
  rows: LearnRow[];
}

/** Rows not proposed, by why (connection counts). */
export interface NotProposed {
  /** A rule of the policy already decides them. */
  covered: number;
  /** Only ever blocked. */
  blocked: number;
  /** First seen within the stability period. */
  unstable: number;
  /** The stored facts cannot say which rule decides (a process fact is missing). */
  undecided: number;
  /**
   * Inbound by name (rules name inbound peers by address only), a name that reads as a pattern
   * (`*.` or `**.`), TCP/UDP without a port, or another protocol with a process (a rule names a
   * process for TCP and UDP only).
   */
  inexpressible: number;
  /** The identity's path, name or container holds `*` or `?` (a rule's globs cannot escape them). */
  wildcard: number;
  /**
   * A process known only by a name holding a slash (a comm that reads like a path, which exec
   * never gives: the process chose it), or a stored row from before the name-only mark that
   * may be one: never proposed as a path, nor by that name.
   */
  pathLikeName: number;
  /** Past the identity, destination or rule caps. */
  capped: number;
}

/** Every reason at 0. */
export const noneNotProposed = (): NotProposed => ({
  covered: 0,
  blocked: 0,
  unstable: 0,
  undecided: 0,
  inexpressible: 0,
  wildcard: 0,
  pathLikeName: 0,
  capped: 0,
});

export interface Proposal {
  rules: ProposedRule[];
  notProposed: NotProposed;
}

interface Seen {
  ports: Set<number>;
  rows: LearnRow[];
}

export function propose(
  model: PolicyModel,
  rows: readonly LearnRow[],
  options: ProposeOptions,
): Proposal {
  const not = noneNotProposed();
  const withPath = pathsByName(rows);
  // identity -> "direction protocol" -> peer -> ports and rows
  const byIdentity = new Map<
    string,
    { id: Identity; total: number; flows: Map<string, Map<string, Seen>> }
  >();
  for (const r of rows) {
    if (r.allowed + r.detected === 0) {
      not.blocked += r.connections;
      continue;
    }
    const ported = PORTED.has(r.protocol);
    const isIp = parseIp(r.peer).ok;
    // a name DNS answered for (a zone's wildcard record answers `*.x` too) that reads as a
    // pattern would allow every name below it: only a plain name is written as an entry
    const host = isIp ? null : parseHostname(r.peer);
    const named = !!host?.ok && host.value.wildcard === null;
    if (
      (!isIp && (r.direction === "ingress" || !named)) ||
      (ported && r.port === 0) ||
      (!ported && r.exe)
    ) {
      not.inexpressible += r.connections;
      continue;
    }
    const by = decidedBy(model, r);
    if (by !== "default") {
      not[by === "rule" ? "covered" : "undecided"] += r.connections;
      continue;
    }
    if (r.firstMs > options.now - options.stableMs) {
      not.unstable += r.connections;
      continue;
    }
    const joined = r.nameOnly ? withPath.get(nameKey(r)) : undefined;
    const id: Identity = {
      exe: joined ?? r.exe,
      nameOnly: r.nameOnly && joined === undefined,
      user: r.user,
      container: r.container,
    };
    if (!expressible(id)) {
      not.wildcard += r.connections;
      continue;
    }
    if (pathLikeName(id)) {
      not.pathLikeName += r.connections;
      continue;
    }
    const key = identityKey(id);
    let entry = byIdentity.get(key);
    if (!entry) {
      entry = {
        id,
        total: 0,
        flows: new Map(),
      };
      byIdentity.set(key, entry);
    }
    entry.total += r.connections;
    const flowKey = `${r.direction} ${r.protocol}`;
    const peers = entry.flows.get(flowKey) ?? new Map<string, Seen>();
    entry.flows.set(flowKey, peers);
    const seen = peers.get(r.peer) ?? { ports: new Set<number>(), rows: [] };
    peers.set(r.peer, seen);
    if (ported) seen.ports.add(r.port);
    seen.rows.push(r);
  }
  const identities = [...byIdentity.values()].sort(
    (a, b) => b.total - a.total || (identityKey(a.id) < identityKey(b.id) ? -1 : 1),
  );
  for (const dropped of identities.splice(MAX_IDENTITIES)) not.capped += dropped.total;
  const taken = new Set(model.rules.map((r) => r.name));
  const unique = (name: string) => {
    let out = name;
    for (let n = 2; taken.has(out); n++) out = `${name}-${n}`;
    taken.add(out);
    return out;
  };
  const out: ProposedRule[] = [];
  for (const [at, { id, flows }] of identities.entries()) {
    const cappedBefore = not.capped;
    const first = out.length;
    const slug = slugOf(id);
    const process = processSection(id);
    const directions = new Set<"ingress" | "egress">();
    let n = 0;
    for (const flowKey of [...flows.keys()].sort()) {
      const [direction, protocol] = flowKey.split(" ") as ["ingress" | "egress", string];
      const peers = flows.get(flowKey)!;
      // peers are generalised only with peers seen on the same ports: a wildcard or prefix
      // over peers on different ports would allow each peer on the others' ports too
      const byPortSet = new Map<string, string[]>();
      for (const [peer, seen] of peers) {
        const key = JSON.stringify(portRanges(seen.ports));
        const list = byPortSet.get(key);
        if (list) list.push(peer);
        else byPortSet.set(key, [peer]);
      }
      const destinations: (Destination & { portKey: string })[] = [];
      for (const [portKey, list] of byPortSet)
        for (const d of generalisePeers(list, options)) destinations.push({ ...d, portKey });
      destinations.sort((a, b) =>
        a.entry !== b.entry ? (a.entry < b.entry ? -1 : 1) : a.portKey < b.portKey ? -1 : 1,
      );
      for (const d of destinations.splice(MAX_DESTINATIONS))
        for (const p of d.peers) for (const r of peers.get(p)!.rows) not.capped += r.connections;
      // destinations with the same ports share a rule
      const byPorts = new Map<string, typeof destinations>();
      for (const d of destinations) {
        const group = byPorts.get(d.portKey);
        if (group) group.push(d);
        else byPorts.set(d.portKey, [d]);
      }
      for (const [portKey, group] of byPorts) {
        const ports = JSON.parse(portKey) as (number | string)[];
        const groupRows = group.flatMap((d) => d.peers.flatMap((p) => peers.get(p)!.rows));
        const because = group.flatMap((d) =>
          d.because ? [`${d.entry}: ${d.because}: ${listed(d.peers)}`] : [],
        );
        const ranges = ports.filter((p) => typeof p === "string");
        if (ranges.length) because.push(`ports ${ranges.join(", ")}: adjacent ports seen`);
        if (id.nameOnly)
          because.push(
            "process: known by its name only (its executable was not read): any process of this user may take the name",
          );
        const layer4: Record<string, unknown> = {
          protocol: /^\d+$/.test(protocol) ? Number(protocol) : protocol,
        };
        if (PORTED.has(protocol)) layer4.port = ports;
        const yaml: Record<string, unknown> = {
          name: unique(`suggest-${slug}-${direction === "ingress" ? "in" : "out"}-${++n}`),
          direction,
          action: "allow",
          mode: "detect",
          ...(process ? { process } : {}),
          layer3: { remote: group.map((d) => d.entry) },
          layer4,
        };
        directions.add(direction);
        out.push({
          name: yaml.name as string,
          identity: id,
          direction,
          action: "allow",
          yaml,
          ...totals(groupRows),
          because,
          rows: groupRows,
        });
      }
    }
    // with an allowing default, least privilege needs the identity's other connections flagged
    for (const direction of directions) {
      if (!process || model.defaults[direction] !== "allow") continue;
      const name = unique(`suggest-${slug}-${direction === "ingress" ? "in" : "out"}-rest`);
      out.push({
        name,
        identity: id,
        direction,
        action: "block",
        yaml: {
          name,
          direction,
          action: "block",
          mode: "detect",
          process,
          layer4: { protocol: "any" },
        },
        hits: 0,
        firstMs: 0,
        lastMs: 0,
        processes: 0,
        because: [
          `the ${direction} default allows: this identity's connections the rules above do not name are reported as detected`,
        ],
        rows: [],
      });
    }
    if (out.length > MAX_RULES) {
      // this identity and every smaller one are left out whole
      out.splice(first);
      not.capped = cappedBefore;
      for (const rest of identities.slice(at)) not.capped += rest.total;
      break;
    }
  }
  return { rules: out, notProposed: not };
}

/** Peers named in a rule's comment at most; the rest are counted. */
const LISTED = 10;

const listed = (peers: readonly string[]) =>
  peers.length > LISTED
    ? `${peers.slice(0, LISTED).join(", ")} and ${peers.length - LISTED} more`
    : peers.join(", ");

function totals(rows: readonly LearnRow[]) {
  let hits = 0;
  let firstMs = Infinity;
  let lastMs = 0;
  let processes = 0;
  for (const r of rows) {
    hits += r.connections;
    firstMs = Math.min(firstMs, r.firstMs);
    lastMs = Math.max(lastMs, r.lastMs);
    processes = Math.max(processes, r.processes);
  }
  return { hits, firstMs, lastMs, processes };
}

// An identity as the roll-ups key it (executable path, else the process name; user;
// container) and what a rule says of it: the `process` section naming it, a rule-name slug, a
// roll-up row as the evaluator's facts, and which policy rule decides a row.
import type { PolicyModel } from "../../config/model.ts";
import { parseIp } from "../../config/ip.ts";
import { evaluate } from "../../policy/evaluator.ts";
import type { ConnectionFacts } from "../../policy/facts.ts";
import type { LearnRow } from "./learn-rows.ts";

export interface Identity {
  exe: string;
  user: number;
  container: string;
}

export const PORTED = new Set(["tcp", "udp"]);

/** A roll-up row as the evaluator's facts: a peer known by name has no address to match. */
export function rowFacts(r: LearnRow): ConnectionFacts {
  const ip = parseIp(r.peer);
  const remoteIp = ip.ok ? r.peer : "0.0.0.0";
  const protocol = /^\d+$/.test(r.protocol) ? Number(r.protocol) : r.protocol;
  const ported = PORTED.has(r.protocol);
  const remote: ConnectionFacts["remote"] = ported
    ? { ip: remoteIp, port: r.direction === "egress" ? r.port : 40000 }
    : { ip: remoteIp };
  if (!ip.ok) remote.names = [r.peer];
  const local = ported
    ? { ip: "0.0.0.0", port: r.direction === "ingress" ? r.port : 40000 }
    : { ip: "0.0.0.0" };
  const facts: ConnectionFacts = {
    direction: r.direction as ConnectionFacts["direction"],
    protocol: protocol as ConnectionFacts["protocol"],
    family: remoteIp.includes(":") ? 6 : 4,
    local,
    remote,
  };
  if (r.exe) {
    const name = r.exe.slice(r.exe.lastIndexOf("/") + 1).slice(0, 15);
    facts.process = {
      name,
      ...(r.exe.startsWith("/") ? { path: r.exe } : {}),
      ...(r.user >= 0 ? { user: r.user } : {}),
      container: r.container ? { name: r.container, id: r.container } : null,
    };
  }
  return facts;
}

/** How the current policy decides a row: "default", "rule" or "undecided". */
export function decidedBy(model: PolicyModel, r: LearnRow): "default" | "rule" | "undecided" {
  const e = evaluate(model, rowFacts(r));
  if (e.verdict !== "deferred") return e.rule === "default" ? "default" : "rule";
  return e.possible.every((d) => d.rule === "default") ? "default" : "undecided";
}

/** The `process` section that names an identity; null when the flows had no process. */
export function processSection(id: Identity): Record<string, unknown> | null {
  if (!id.exe) return null;
  const out: Record<string, unknown> = id.exe.startsWith("/") ? { path: id.exe } : { name: id.exe };
  if (id.user >= 0) out.user = [id.user];
  if (id.container)
    out.container = /^[0-9a-f]{12,64}$/.test(id.container)
      ? { id: id.container }
      : { name: id.container };
  return out;
}

export function slugOf(id: Identity): string {
  const base = id.exe.slice(id.exe.lastIndexOf("/") + 1) || "host";
  const text = `${id.container ? `${id.container}-` : ""}${base}`;
  return (
    text
      .toLowerCase()
      .replace(/[^a-z0-9]+/g, "-")
      .replace(/^-+|-+$/g, "")
      .slice(0, 40) || "process"
  );
}

export const nameKey = (r: { exe: string; user: number; container: string }) =>
  `${r.exe.slice(r.exe.lastIndexOf("/") + 1).slice(0, 15)}\0${r.user}\0${r.container}`;

/**
 * A connection whose process exited before moat read its executable is keyed by its name
 * (comm): it joins the identity whose executable has that file name (as comm shortens it), user
 * and container, when exactly one does.
 */
export function pathsByName(
  rows: readonly { exe: string; user: number; container: string }[],
): Map<string, string> {
  const paths = new Map<string, Set<string>>();
  for (const r of rows) {
    if (!r.exe.startsWith("/")) continue;
    const key = nameKey(r);
    paths.set(key, (paths.get(key) ?? new Set()).add(r.exe));
  }
  const out = new Map<string, string>();
  for (const [key, set] of paths) if (set.size === 1) out.set(key, [...set][0]!);
  return out;
}

// moat status: what the running daemon is doing (mode, policy, hooks, counters, losses, URL
// feeds failing), and what on the host keeps it from seeing what the policy needs.
import type { Command } from "../command.ts";
import { API_OPTIONS, API_USAGE, apiTarget, call } from "../api/client.ts";
import { jsonLine } from "../json-line.ts";
import type { MoatSnapshot } from "../../observe/index.ts";

/** The snapshot as JSON carries bigints as numbers. */
type Num<T> = T extends bigint ? number : T extends object ? { [K in keyof T]: Num<T[K]> } : T;
export type StatusJson = Num<MoatSnapshot>;

export function formatStatus(s: StatusJson): string[] {
  const c = s.counters;
  const lines = [
    `mode: ${s.mode}`,
    `policy: ${s.policyPath} (generation ${s.generation}, sha256 ${s.policyHash.slice(0, 12)})`,
    `reloads: ${s.reloads.ok} applied, ${s.reloads.refused} refused`,
    ...attachedLines(s.attached),
    // the verdict counters count packets of connections with that verdict, not connections
    `packets: ${c.pass.packets} passed, ${c.drop.packets} dropped; of allowed connections ${c.allowed.packets}, of blocked ${c.blocked.packets}, of detected ${c.detected.packets}`,
    `connections: ${c.ctCreated.packets} tracked`,
    `events: ${Object.entries(s.events)
      .map(([k, v]) => `${v} ${k}`)
      .join(", ")}`,
    `loss: ${s.ringLost} events lost in the kernel, ${c.ctFull.packets} connections untracked (table full)`,
    `conntrack: ${s.conntrack.entries}/${s.conntrack.capacity} entries`,
    `sinks: ${s.sinks.map((x) => `${x.name} ${x.delivered} delivered, ${x.dropped} dropped${sinkFailures(x)}`).join("; ")}`,
  ];
  if (s.feeds?.length) lines.push(`feeds: ${s.feeds.map(feedLine).join("; ")}`);
  for (const w of s.warnings ?? []) lines.push(`warning: ${w}`);
  return lines;
}

/** One line per interface or cgroup, its hooks in the order they were attached. */
function attachedLines(attached: StatusJson["attached"]): string[] {
  const by = new Map<string, string[]>();
  for (const a of attached) {
    const cgroup = a.mode === "cgroup";
    const where = cgroup ? `cgroup ${a.interface}:` : a.interface;
    const hook = cgroup ? a.hook : `${a.hook} ${a.mode}${a.why ? ` (${a.why})` : ""}`;
    by.set(where, [...(by.get(where) ?? []), hook]);
  }
  if (by.size === 0) return ["attached: nothing"];
  return [...by].map(([where, hooks]) => `attached: ${where} ${hooks.join(", ")}`);
}

/** A URL feed: failing since when (its last good list in force meanwhile), and its last error. */
function feedLine(f: NonNullable<StatusJson["feeds"]>[number]): string {
  const state = f.failingSince ? `failing since ${f.failingSince}` : "ok";
  if (!f.failures) return `${f.name} ${state}`;
  const fetches = f.failures === 1 ? "1 failed fetch" : `${f.failures} failed fetches`;
  return `${f.name} ${state} (${fetches}, the last at ${f.lastErrorAt}: ${f.lastError})`;
}

/** Events lost to failed writes, and the writes (a batch, or an audit line outside one). */
function sinkFailures(x: StatusJson["sinks"][number]): string {
  if (!x.failed) return "";
  return `, ${x.lost} events lost (${x.failed} failed writes)`;
}

export const statusCommand: Command = {
  name: "status",
  summary: "show the running daemon's mode, policy, hooks, counters and losses",
  usage: `moat status [--json] ${API_USAGE}`,
  options: { ...API_OPTIONS, json: { type: "boolean" } },
  async run({ values }, io) {
    const status = await call<StatusJson>(apiTarget(values), "GET", "/v1/status");
    if (values.json) io.out(jsonLine(status));
    else for (const line of formatStatus(status)) io.out(line);
    return 0;
  },
};

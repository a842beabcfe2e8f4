// The `moat top` frame: top blocked/detected remotes, processes and rules, as plain text lines.
// Pure (data in, lines out) so it is tested without a terminal.
import type { MoatEvent } from "../datapath/index.ts";
import { printable } from "../config/index.ts";
import { processOf } from "../observe/index.ts";

export interface Tally {
  blocked: number;
  detected: number;
}

export interface TopData {
  remotes: Map<string, Tally>;
  processes: Map<string, Tally>;
  rules: Map<string, Tally>;
  events: number;
  /** When counting started (ms since the epoch). */
  since: number;
}

export const emptyTop = (since: number): TopData => ({
  remotes: new Map(),
  processes: new Map(),
  rules: new Map(),
  events: 0,
  since,
});

/** Counts blocked and detected verdicts (closes and allowed connections are not news here). */
export function tally(data: TopData, event: MoatEvent): void {
  if (event.type !== "blocked" && event.type !== "detected") return;
  data.events++;
  const p = processOf(event);
  const keys: [Map<string, Tally>, string][] = [
    [data.remotes, event.remote.ip],
    [data.processes, p ? `${p.name} (${p.pid})` : "(unknown)"],
    [data.rules, event.rule],
  ];
  for (const [map, key] of keys) {
    const t = map.get(key) ?? { blocked: 0, detected: 0 };
    t[event.type]++;
    map.set(key, t);
  }
}

function section(title: string, map: Map<string, Tally>, rows: number, width: number): string[] {
  const top = [...map.entries()]
    .sort(([, a], [, b]) => b.blocked + b.detected - (a.blocked + a.detected))
    .slice(0, rows);
  const nameWidth = Math.max(10, width - 22);
  const lines = [`${title.padEnd(nameWidth)} ${"BLOCKED".padStart(10)} ${"DETECTED".padStart(10)}`];
  for (const [raw, t] of top) {
    // a process names itself: its control characters would drive the terminal
    const name = printable(raw);
    const shown = name.length > nameWidth ? `${name.slice(0, nameWidth - 1)}…` : name;
    lines.push(
      `${shown.padEnd(nameWidth)} ${String(t.blocked).padStart(10)} ${String(t.detected).padStart(10)}`,
    );
  }
  if (top.length === 0) lines.push("(none)");
  return lines;
}

export function renderTop(
  data: TopData,
  options: { now: number; width: number; rows: number },
): string[] {
  const seconds = Math.max(0, Math.round((options.now - data.since) / 1000));
  return [
    `moat top: ${data.events} blocked/detected connections in the last ${seconds} s`,
    "",
    ...section("REMOTE", data.remotes, options.rows, options.width),
    "",
    ...section("PROCESS", data.processes, options.rows, options.width),
    "",
    ...section("RULE", data.rules, options.rows, options.width),
  ];
}

/** The frame as data (`moat top --once --json`): the top `rows` of each, most first. */
export function topJson(data: TopData, rows: number) {
  const top = (map: Map<string, Tally>) =>
    [...map.entries()]
      .sort(([, a], [, b]) => b.blocked + b.detected - (a.blocked + a.detected))
      .slice(0, rows)
      .map(([name, t]) => ({ name, ...t }));
  return {
    since: new Date(data.since).toISOString(),
    events: data.events,
    remotes: top(data.remotes),
    processes: top(data.processes),
    rules: top(data.rules),
  };
}

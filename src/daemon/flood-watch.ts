// The SYN flood defence's attack events (docs/policy.md, "flood"): once a second the defended
// ports' state is read from the kernel, and each start and end of an attack becomes one event.
// The kernel keeps a port under attack until `hold` after its last SYN over the rate, so a rate
// hovering at the threshold makes one long attack, not a start and an end a second.
import type { MoatEvent, PortAttack, SynFloodAttack } from "../datapath/index.ts";
import type { Mode } from "../config/index.ts";

const EVERY_MS = 1000;

export interface FloodSource {
  floodAttacks(): PortAttack[];
  readonly synCookies: "moat" | "kernel";
  readonly generation: number;
}

interface Counts {
  syns: bigint;
  over: bigint;
}

/** An attack in progress: its start, and the port's counts before it. */
interface Ongoing extends Counts {
  sinceNs: bigint;
}

/** Compares one reading with the last: the events of attacks that started or ended since. */
export class FloodWatch {
  private readonly ongoing = new Map<number, Ongoing>();
  /** Each port's counts at the last reading: an attack's counts start from them. */
  private readonly last = new Map<number, Counts>();

  private readonly source: FloodSource;
  private readonly mode: () => Mode | null;
  private readonly push: (event: MoatEvent) => void;

  constructor(source: FloodSource, mode: () => Mode | null, push: (event: MoatEvent) => void) {
    this.source = source;
    this.mode = mode;
    this.push = push;
  }

  poll(nowNs: bigint = process.hrtime.bigint()): void {
    const mode = this.mode();
    if (!mode) {
      this.ongoing.clear();
      this.last.clear();
      return;
    }
    const seen = new Set<number>();
    for (const a of this.source.floodAttacks()) {
      seen.add(a.port);
      const was = this.ongoing.get(a.port);
      const active = a.untilNs > nowNs;
      if (was && (!active || a.sinceNs !== was.sinceNs)) {
        this.ongoing.delete(a.port);
        // ended when the hold after the last SYN over the rate ran out
        const endNs = active ? a.sinceNs : a.untilNs;
        this.report(mode, a, was, "ended", endNs - was.sinceNs);
      }
      if (active && !this.ongoing.has(a.port)) {
        // a port first seen under attack: its every SYN belongs to the attack
        const before = (!was && this.last.get(a.port)) || { syns: 0n, over: 0n };
        const start = { sinceNs: a.sinceNs, ...before };
        this.ongoing.set(a.port, start);
        this.report(mode, a, start, "started");
      }
      this.last.set(a.port, { syns: a.syns, over: a.over });
    }
    // a port the policy no longer defends: its attack is over
    for (const port of [...this.ongoing.keys()]) if (!seen.has(port)) this.ongoing.delete(port);
    for (const port of [...this.last.keys()]) if (!seen.has(port)) this.last.delete(port);
  }

  private report(
    mode: Mode,
    a: PortAttack,
    from: Counts,
    state: SynFloodAttack["state"],
    durationNs?: bigint,
  ): void {
    const verdict = mode === "prevent" ? "blocked" : "detected";
    const attack: SynFloodAttack = {
      state,
      port: a.port || null,
      syns: Number(a.syns - from.syns),
      over: Number(a.over - from.over),
      ...(durationNs !== undefined ? { durationMs: Number(durationNs / 1_000_000n) } : {}),
      answered: mode === "prevent" ? this.source.synCookies : "kernel",
    };
    this.push({
      time: new Date().toISOString(),
      type: verdict,
      mode,
      rule: "flood",
      direction: "ingress",
      protocol: "tcp",
      local: { ip: "", port: a.port },
      remote: { ip: "", port: 0 },
      interface: null,
      process: null,
      layer7: null,
      connection: null,
      reason: "syn_flood",
      verdict,
      hook: "xdp",
      generation: this.source.generation,
      attack,
    });
  }
}

export function startFloodWatch(
  source: FloodSource,
  mode: () => Mode | null,
  push: (event: MoatEvent) => void,
): { stop(): void } {
  const watch = new FloodWatch(source, mode, push);
  const timer = setInterval(() => watch.poll(), EVERY_MS);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}

/** The start line that says who answers SYN floods with cookies on this kernel. */
export function synCookiesLine(who: "moat" | "kernel"): string {
  return who === "moat"
    ? "SYN flood defence: moat's SYN cookies (XDP or TC ingress, bpf_sk_assign_tcp_reqsk)"
    : "SYN flood defence: this kernel lacks bpf_sk_assign_tcp_reqsk (Linux 6.9+): floods are counted and reported, the kernel's own syncookies answer them";
}

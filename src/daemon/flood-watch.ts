// The SYN flood defence's attack events (docs/policy.md, "flood"): once a second the defended
// ports' state is read from the kernel, and each start and end of an attack becomes one event.
// The kernel keeps a port under attack until `hold` after its last SYN over the rate, so a rate
// hovering at the threshold makes one long attack, not a start and an end a second.
import {
  kernelMonotonicNs,
  type MoatEvent,
  type PortAttack,
  type SynFloodAttack,
} from "../datapath/index.ts";
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

/** A port's counts and the end of its attack's hold, as one reading found them. */
interface Reading extends Counts {
  untilNs: bigint;
}

/** An attack in progress: its start, the port's counts before it, and its latest reading. */
interface Ongoing {
  sinceNs: bigint;
  before: Counts;
  latest: Reading;
  /** The mode of the latest reading: an attack whose policy went away ends in it. */
  mode: Mode;
}

const NONE: Counts = { syns: 0n, over: 0n };

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

  poll(nowNs: bigint = kernelMonotonicNs()): void {
    const mode = this.reportedMode();
    if (!mode) {
      // no `flood.syn` any more: the attacks under way are over for moat
      for (const port of [...this.ongoing.keys()]) this.endUnwatched(port, nowNs);
      this.last.clear();
      return;
    }
    const seen = new Set<number>();
    for (const a of this.source.floodAttacks()) {
      seen.add(a.port);
      this.read(a, mode, nowNs);
      this.last.set(a.port, { syns: a.syns, over: a.over });
    }
    // a port the policy no longer defends: its attack is over
    for (const port of [...this.ongoing.keys()])
      if (!seen.has(port)) this.endUnwatched(port, nowNs);
    for (const port of [...this.last.keys()]) if (!seen.has(port)) this.last.delete(port);
  }

  /**
   * The mode attacks are reported in. Without bpf_sk_assign_tcp_reqsk moat answers no SYN, the
   * kernel's syncookies do: a prevent policy counts and reports attacks as detect does.
   */
  private reportedMode(): Mode | null {
    const mode = this.mode();
    return mode === "prevent" && this.source.synCookies === "kernel" ? "detect" : mode;
  }

  /** One port's kernel record: the end of its attack, the start of a new one, or neither. */
  private read(a: PortAttack, mode: Mode, nowNs: bigint): void {
    const was = this.ongoing.get(a.port);
    const active = a.untilNs > nowNs;
    if (was && a.sinceNs !== was.sinceNs) {
      // it ended and another began since the last reading, which the kernel's record now holds:
      // the old one's figures and end are the last reading's (SYNs over the rate after that
      // reading are counted in the new attack)
      this.end(a.port, was, mode, was.latest);
    } else if (was && !active) {
      // ended when the hold after the last SYN over the rate ran out
      this.end(a.port, was, mode, a);
    } else if (was) {
      was.latest = { syns: a.syns, over: a.over, untilNs: a.untilNs };
      was.mode = mode;
    }
    if (active && !this.ongoing.has(a.port)) this.begin(a, mode);
  }

  private begin(a: PortAttack, mode: Mode): void {
    // counted from the last reading; a port first seen under attack: its every SYN belongs to it
    const before = this.last.get(a.port) ?? NONE;
    const latest = { syns: a.syns, over: a.over, untilNs: a.untilNs };
    this.ongoing.set(a.port, { sinceNs: a.sinceNs, before, latest, mode });
    this.report(mode, a.port, latest, before, "started");
  }

  private end(port: number, was: Ongoing, mode: Mode, at: Reading, endNs = at.untilNs): void {
    this.ongoing.delete(port);
    this.report(mode, port, at, was.before, "ended", endNs - was.sinceNs);
  }

  /**
   * The watch of a port under attack stops (the policy no longer defends it, or has no flood
   * section): it ended when the last reading expected it to, or ends now if that is still to come.
   */
  private endUnwatched(port: number, nowNs: bigint): void {
    const was = this.ongoing.get(port);
    if (!was) return;
    const endNs = was.latest.untilNs < nowNs ? was.latest.untilNs : nowNs;
    this.end(port, was, was.mode, was.latest, endNs);
  }

  private report(
    mode: Mode,
    port: number,
    at: Counts,
    from: Counts,
    state: SynFloodAttack["state"],
    durationNs?: bigint,
  ): void {
    const verdict = mode === "prevent" ? "blocked" : "detected";
    const attack: SynFloodAttack = {
      state,
      port: port || null,
      syns: Number(at.syns - from.syns),
      over: Number(at.over - from.over),
      ...(durationNs !== undefined ? { durationMs: Number(durationNs / 1_000_000n) } : {}),
      // reportedMode: prevent only where moat's cookies answer
      answered: mode === "prevent" ? "moat" : "kernel",
    };
    this.push({
      time: new Date().toISOString(),
      type: verdict,
      mode,
      rule: "flood",
      direction: "ingress",
      protocol: "tcp",
      local: { ip: "", port },
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
  // the daemon's stop ends no attack: the attack goes on, only moat's watch of it stops, and the
  // next daemon's fresh flood maps report what it then sees as a new attack
  return { stop: () => clearInterval(timer) };
}

/** The start line that says who answers SYN floods with cookies on this kernel. */
export function synCookiesLine(who: "moat" | "kernel"): string {
  return who === "moat"
    ? "SYN flood defence: moat's SYN cookies (XDP or TC ingress, bpf_sk_assign_tcp_reqsk)"
    : "SYN flood defence: this kernel lacks bpf_sk_assign_tcp_reqsk (Linux 6.9+): floods are counted and reported, the kernel's own syncookies answer them";
}

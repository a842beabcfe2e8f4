// What bench/history-growth.ts stores: a host's decisions as the decoder and attribution make
// them, and flow records for the flow aggregator. Seeded, so every run stores the same text.
//
// Events, by share: ingress scans blocked at XDP (no process; 20,000 source addresses, 5% IPv6,
// skewed: a few sources send most), egress connections blocked at connect() and detected ones
// (40 processes, a third of them in containers; 2,000 destinations, 60% with a DNS name), and
// the closes of the detected connections (their packets, bytes and duration).
import type { ContainerFacts, ProcessFacts } from "../src/attribution/types.ts";
import type { MoatEvent } from "../src/datapath/event.ts";
import type { FlowRecord } from "../src/observe/flows/record.ts";
import { fakeEvent } from "../test/helpers/events.ts";
import { flow, processOf, rng, type Rand } from "../test/helpers/synthetic-history.ts";

const HOST_V4 = "192.0.2.10";
const SCAN_SOURCES = 20_000;
const DESTINATIONS = 2000;
const PROCESSES = 40;
const SCANNED_PORTS = [22, 23, 80, 443, 445, 3389, 5900, 8080, 8443, 6379];
const DESTINATION_PORTS = [443, 443, 443, 80, 53, 853, 8443, 5432, 9200, 25];

const hex = (r: Rand, digits: number) =>
  Array.from({ length: digits }, () => Math.floor(r() * 16).toString(16)).join("");

/** Index into n items, skewed towards the first (a few items take most of the draws). */
const skewed = (r: Rand, n: number) => Math.floor(r() ** 3 * n);

function v4(r: Rand): string {
  const a = 1 + Math.floor(r() * 222);
  return `${a === 10 || a === 127 ? 45 : a}.${Math.floor(r() * 256)}.${Math.floor(r() * 256)}.${1 + Math.floor(r() * 254)}`;
}

function v6(r: Rand): string {
  return `2001:db8:${hex(r, 4)}:${hex(r, 3)}::${hex(r, 4)}`;
}

/** The host's processes: system services, user programs, containers' processes. */
function processes(r: Rand): ProcessFacts[] {
  const users: [number, string][] = [
    [0, "root"],
    [33, "www-data"],
    [101, "systemd-resolve"],
    [110, "prometheus"],
    [1000, "alice"],
  ];
  return Array.from({ length: PROCESSES }, (_, i) => {
    const [uid, userName] = users[i % users.length]!;
    if (i % 3 === 2) {
      const id = hex(r, 64);
      const container: ContainerFacts = {
        id,
        name: `app-${i}-worker`,
        image: `registry.example.com/team/app-${i}:1.${i}.0`,
      };
      return {
        ...processOf(`/usr/local/bin/app-${i}`, uid, `/system.slice/docker-${id}.scope`),
        userName,
        container,
      };
    }
    const path = i % 3 === 0 ? `/usr/sbin/service-${i}d` : `/usr/bin/tool-${i}`;
    const cgroup =
      uid === 1000
        ? `/user.slice/user-1000.slice/session-${i}.scope`
        : `/system.slice/s${i}.service`;
    return { ...processOf(path, uid, cgroup), userName };
  });
}

interface Destination {
  ip: string;
  names?: string[];
  port: number;
}

function destinations(r: Rand): Destination[] {
  return Array.from({ length: DESTINATIONS }, (_, i) => ({
    ip: r() < 0.1 ? v6(r) : v4(r),
    ...(i % 5 < 3 ? { names: [`api-${i}.svc${i % 150}.example.com`] } : {}),
    port: DESTINATION_PORTS[i % DESTINATION_PORTS.length]!,
  }));
}

/** Events in time order, `stepMs` apart, as the pipeline hands them to the history. */
export class EventMix {
  readonly #r: Rand;
  readonly #processes: ProcessFacts[];
  readonly #destinations: Destination[];
  readonly #sources: string[];
  #conn = 1;
  /** Detected connections waiting for their close event. */
  #open: MoatEvent[] = [];

  constructor(seed = 1) {
    this.#r = rng(seed);
    this.#processes = processes(this.#r);
    this.#destinations = destinations(this.#r);
    this.#sources = Array.from({ length: SCAN_SOURCES }, () =>
      this.#r() < 0.05 ? v6(this.#r) : v4(this.#r),
    );
  }

  /** The next event at `timeMs`: 45% scans blocked, 25% egress blocked, 15% detected, 15% closes. */
  next(timeMs: number): MoatEvent {
    const r = this.#r;
    const time = new Date(timeMs).toISOString();
    // conntrack ids: a CPU's creation count, shifted, and the CPU (bpf/include/judge.h)
    const connection = ((this.#conn++ << 12) | Math.floor(r() * 2)).toString(16);
    const pick = r();
    if (pick < 0.45) {
      const ip = this.#sources[skewed(r, SCAN_SOURCES)]!;
      return fakeEvent({
        time,
        local: { ip: ip.includes(":") ? "2001:db8::10" : HOST_V4, port: this.#scanned() },
        remote: { ip, port: 1024 + Math.floor(r() * 64_000) },
        protocol: r() < 0.9 ? "tcp" : "udp",
        connection,
      });
    }
    // a close needs a detected connection still open: else a detected one
    if (pick < 0.85 || this.#open.length === 0) {
      const detected = pick >= 0.7;
      const d = this.#destinations[skewed(r, DESTINATIONS)]!;
      const e = fakeEvent({
        time,
        type: detected ? "detected" : "blocked",
        verdict: detected ? "detected" : "blocked",
        mode: detected ? "detect" : "prevent",
        rule: detected ? "watch-egress" : r() < 0.5 ? "default" : "no-telemetry",
        direction: "egress",
        protocol: d.port === 53 ? "udp" : "tcp",
        local: {
          ip: d.ip.includes(":") ? "2001:db8::10" : HOST_V4,
          port: 32768 + (timeMs % 28_000),
        },
        remote: { ip: d.ip, port: d.port, ...(d.names ? { names: d.names } : {}) },
        process: this.#processes[skewed(r, PROCESSES)]!,
        hook: detected ? "tc" : "connect",
        interface: detected ? "eth0" : null,
        connection,
        generation: 3,
      });
      if (detected) this.#open.push(e);
      return e;
    }
    // the close of a detected connection, oldest first
    const opened = this.#open.shift()!;
    return {
      ...opened,
      time,
      type: "closed",
      reason: r() < 0.8 ? "fin" : "rst",
      stats: {
        packets: 2 + Math.floor(r() * 400),
        bytes: 120 + Math.floor(r() * 400_000),
        durationMs: Math.floor(r() * 30_000),
      },
    };
  }

  #scanned(): number {
    const r = this.#r;
    return r() < 0.7
      ? SCANNED_PORTS[Math.floor(r() * SCANNED_PORTS.length)]!
      : 1 + Math.floor(r() * 65_535);
  }
}

/**
 * One window's flow records, one short connection for each key (a number standing for an
 * identity x peer x port: 200 identities, peers numbered key / 200), ending inside the window
 * that starts at `startMs`.
 */
export function windowRecords(
  r: Rand,
  keys: Iterable<number>,
  startMs: number,
  windowMs: number,
): FlowRecord[] {
  const out: FlowRecord[] = [];
  for (const k of keys) {
    const i = k % 200;
    const process =
      i % 4 === 3
        ? processOf(`/usr/local/bin/app-${i}`, 1000, `/system.slice/app-${i}.service`)
        : processOf(`/usr/bin/client-${i}`, 1000 + (i % 5), `/user.slice/user-1000.slice`);
    const peer = Math.floor(k / 200);
    const ingress = k % 10 === 9;
    const durationMs = r() * 5000;
    out.push(
      flow({
        // started and ended inside the window (and its minute)
        timeMs: startMs + Math.floor(r() * (windowMs - 6000)),
        process,
        remote: `198.${18 + (peer % 2)}.${(peer >> 8) & 255}.${1 + (peer % 250)}`,
        ...(peer % 3 === 0 ? {} : { name: `h${peer}.svc${peer % 400}.example.com` }),
        port: ingress ? 443 : [443, 80, 8443, 5432][k % 4]!,
        direction: ingress ? "ingress" : "egress",
        bytes: 500 + Math.floor(r() * 50_000),
        durationMs,
      }),
    );
  }
  return out;
}

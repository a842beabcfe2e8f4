// What the per-packet benches share: two datapaths whose programs rotate the remote over `keys`
// addresses (bpf/include/bench.h), one making every run a new connection and one keeping the
// connections it saw, each anchored so a test run costs what the program costs; and a test run
// that a signal cut short (EINTR) is run again.
import { Datapath } from "../src/datapath/datapath.ts";
import type { BpfProgram } from "../src/datapath/native.d.ts";
import { anchorXdp } from "../test/helpers/xdp-anchor.ts";

export interface BenchDatapaths {
  /** Every run a new connection (NEW). */
  fresh: Datapath;
  /** Connections tracked across runs (ESTABLISHED once seen). */
  tracked: Datapath;
  stop(): void;
}

export function benchDatapaths(keys: number): BenchDatapaths {
  const fresh = Datapath.start({
    interfaces: [],
    pinRoot: null,
    globals: { bench_keys: keys, bench_fresh: 1 },
  });
  const tracked = Datapath.start({ interfaces: [], pinRoot: null, globals: { bench_keys: keys } });
  const anchors = [anchorXdp(fresh.xdp), anchorXdp(tracked.xdp)];
  return {
    fresh,
    tracked,
    stop() {
      for (const a of anchors) a.release();
      fresh.stop();
      tracked.stop();
    },
  };
}

/** ns per run of `repeat` test runs of `program` on `data`; retried when a signal cut it. */
export function testRunNs(program: BpfProgram, data: Buffer, repeat: number): number {
  for (let tries = 0; ; tries++) {
    try {
      return program.testRun({ data, repeat }).duration;
    } catch (err) {
      if ((err as { code?: string }).code !== "EINTR" || tries >= 10) throw err;
    }
  }
}

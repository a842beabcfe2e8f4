// A step of the wall clock (CLOCK_REALTIME) as NTP or a resume from suspend makes one, for moat's
// processes only: loaded with `--import` (the command `steppedWallClock` gives), this module
// moves Date by the milliseconds in the step file, read again every 100 ms. Monotonic clocks and
// the host's real clock are untouched.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const STEP_FILE = "MOAT_TEST_WALL_STEP_FILE";

function moveDate(stepFile: string): void {
  let stepMs = 0;
  const read = () => {
    try {
      stepMs = Number(readFileSync(stepFile, "utf8")) || 0;
    } catch {
      stepMs = 0;
    }
  };
  read();
  setInterval(read, 100).unref();
  const RealDate = Date;
  const realNow = () => RealDate.now();
  class SteppedDate extends RealDate {
    constructor(...args: unknown[]) {
      if (args.length === 0) super(realNow() + stepMs);
      else super(...(args as [number]));
    }
    static override now(): number {
      return realNow() + stepMs;
    }
  }
  globalThis.Date = SteppedDate as DateConstructor;
}

const loadedWith = process.env[STEP_FILE];
if (loadedWith) moveDate(loadedWith);

export interface SteppedWallClock {
  /** `command` run with its wall clock moved by the step (env, then the command). */
  command(command: string[]): string[];
  /** Moves the wall clock of every process started through `command` to `ms` from the real one. */
  step(ms: number): void;
  remove(): void;
}

/** A step file (0 ms at first) and the way to run a command under it. */
export function steppedWallClock(): SteppedWallClock {
  const dir = mkdtempSync(join(tmpdir(), `moat-wallstep-${process.pid}-`));
  const file = join(dir, "step-ms");
  writeFileSync(file, "0");
  const self = fileURLToPath(import.meta.url);
  return {
    command: (command) => [
      "env",
      `NODE_OPTIONS=--import=${self}`,
      `${STEP_FILE}=${file}`,
      ...command,
    ],
    step: (ms) => writeFileSync(file, String(ms)),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}

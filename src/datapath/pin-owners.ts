// Which running daemons use a pin directory. A daemon's pins are live while it runs: a second
// daemon that adopted them would apply its policy into the first one's maps, and its stop (or
// failed start) would unpin them under the first; `moat cleanup` would detach them.
import { readFileSync, readlinkSync, readdirSync, statSync } from "node:fs";
import { resolve } from "node:path";
import { PIN_ROOT } from "./bpffs.ts";

/** moat's entry points: the sources (bin/moat) and the bundle the package installs. */
const ENTRIES = ["/src/cli/main.ts", "/build/dist/cli-main.mjs"];

/** The pin directory of a `moat run` command line (null: --no-pin, or not `moat run`). */
export function pinDirOf(argv: string[], cwd = "/"): string | null {
  const main = argv.findIndex((a) => ENTRIES.some((entry) => a.endsWith(entry)));
  if (main < 0 || argv[main + 1] !== "run" || argv.includes("--no-pin")) return null;
  let dir = PIN_ROOT;
  for (let i = main + 2; i < argv.length; i++) {
    const a = argv[i] ?? "";
    if (a === "--pin-dir" && i + 1 < argv.length) dir = argv[++i] ?? dir;
    else if (a.startsWith("--pin-dir=")) dir = a.slice("--pin-dir=".length);
  }
  return resolve(cwd, dir);
}

/**
 * PIDs of the other `moat run` processes whose pin directory is `pinRoot`. Only root's count:
 * anyone can start a process whose command line looks like moat's, and only root can run one
 * that pins (a look-alike must not keep the daemon from starting, or cleanup from cleaning).
 */
export function daemonsPinning(pinRoot: string): number[] {
  const wanted = resolve(pinRoot);
  const found: number[] = [];
  for (const entry of readdirSync("/proc")) {
    const pid = Number(entry);
    if (!Number.isInteger(pid) || pid === process.pid) continue;
    let argv: string[];
    try {
      if (statSync(`/proc/${pid}`).uid !== 0) continue;
      argv = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
    } catch {
      continue; // gone meanwhile
    }
    let cwd = "/";
    try {
      cwd = readlinkSync(`/proc/${pid}/cwd`);
    } catch {
      // gone meanwhile, or unreadable: a relative --pin-dir is taken from the root
    }
    if (pinDirOf(argv, cwd) === wanted) found.push(pid);
  }
  return found;
}

export class PinsInUseError extends Error {
  readonly code = "EPINSINUSE";
  constructor(message: string) {
    super(message);
    this.name = "PinsInUseError";
  }
}

/** Throws when another daemon runs with `pinRoot`: checked before anything is loaded or adopted. */
export function refuseLivePins(pinRoot: string): void {
  const running = daemonsPinning(pinRoot);
  if (running.length === 0) return;
  throw new PinsInUseError(
    `a moat daemon is running with ${pinRoot} (pid ${running.join(", ")}); its pins are live. ` +
      "Stop or restart that daemon instead, or give this one another --pin-dir (or --no-pin).",
  );
}

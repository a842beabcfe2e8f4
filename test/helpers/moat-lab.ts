// A lab with moat running: namespace b runs test servers and the moat daemon (bin/moat run)
// on its veth; namespace a is the remote peer with real clients (nmap, curl, ping, nc).
import { spawnSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createLab, labPinDir, type Lab } from "./netns.ts";
import { spawnLines, type LineChild } from "./child.ts";
import { MOAT, NODE, ROOT } from "./paths.ts";
import { until } from "./until.ts";

export interface MoatLab extends Lab {
  dir: string;
  policyPath: string;
  auditPath: string;
  /** The daemon's API socket (in `dir`, not /run/moat). */
  apiSocket: string;
  /** The daemon's pin directory (per run, under /sys/fs/bpf). */
  pinDir: string;
  /** The running daemon (a new one after restart()). */
  readonly daemon: LineChild;
  /**
   * Ends the daemon with `signal` (SIGKILL: it runs no clean-up, its pins stay) and starts it
   * again with the same arguments and pin directory; resolves once the new one runs.
   */
  restart(signal?: NodeJS.Signals): Promise<LineChild>;
  /** Replaces the policy file (the daemon reloads on change). */
  writePolicy(text: string): void;
  audit(): string;
  /**
   * The audit log once it has a line `pattern` matches (the daemon writes the log after the turn
   * that printed the event, so a line seen on its output may not be in the file yet).
   */
  auditHas(pattern: RegExp, ms?: number): Promise<string>;
  /** nmap SYN scan from a: port -> state ("open", "closed", "filtered"). */
  scan(ports: number[], target?: string): Map<number, string>;
  /** curl from a; returns curl's exit status and body. */
  curl(url: string, extra?: string[]): { status: number; body: string };
  close(): Promise<void>;
}

export interface MoatLabOptions {
  /**
   * Runs once the namespaces exist, before the daemon starts (which then sees what it made);
   * returns more arguments for `moat run`, if any.
   */
  beforeDaemon?: (lab: Lab) => Promise<string[] | void>;
  /** The command that runs moat (default bin/moat), e.g. a script that registers converters. */
  moat?: string[];
}

/** `policy(lab)` gets the lab (names, addresses, paths) and returns the policy YAML. */
export async function startMoatLab(
  testName: string,
  policy: (lab: Lab & { auditPath: string }) => string,
  servers: string[] = ["tcp:22,80,443,8080", "udp:53,5353"],
  options: MoatLabOptions = {},
): Promise<MoatLab> {
  const lab = createLab(testName);
  const dir = mkdtempSync(join(tmpdir(), `moat-${lab.tag}-`));
  const policyPath = join(dir, "policy.yaml");
  const auditPath = join(dir, "log", "audit.log");
  const apiSocket = join(dir, "api.sock");
  const pinDir = labPinDir(lab.tag);
  writeFileSync(policyPath, policy({ ...lab, auditPath }));
  const children: ChildProcess[] = [];
  let daemon: LineChild | undefined;
  let spawnDaemon: () => LineChild = () => {
    throw new Error("the daemon has not started");
  };
  try {
    const srv = spawnLines("ip", [
      "netns",
      "exec",
      lab.b,
      NODE,
      "--disable-warning=ExperimentalWarning",
      `${ROOT}test/helpers/servers.ts`,
      ...servers,
    ]);
    children.push(srv.proc);
    await srv.waitFor(/^listening$/);
    const daemonArgs = (await options.beforeDaemon?.(lab)) ?? [];
    const moat = options.moat ?? [MOAT];
    spawnDaemon = () =>
      spawnLines("nsenter", [
        `--net=/run/netns/${lab.b}`,
        ...moat,
        "run",
        "--policy",
        policyPath,
        "--pin-dir",
        pinDir,
        "--api",
        `unix:${apiSocket}`,
        "--history",
        join(dir, "history.db"),
        "--decisions",
        join(dir, "decisions.json"),
        ...daemonArgs,
      ]);
    daemon = spawnDaemon();
    // a start loads and verifies every program: seconds on a busy machine
    await daemon.waitFor(/^moat is running/, 60_000);
  } catch (err) {
    daemon?.kill("SIGKILL");
    for (const c of children) c.kill();
    spawnSync("rm", ["-rf", pinDir, dir]);
    lab.cleanup();
    throw err;
  }
  let running = daemon;
  const result: MoatLab = {
    ...lab,
    dir,
    policyPath,
    auditPath,
    apiSocket,
    pinDir,
    get daemon() {
      return running;
    },
    async restart(signal = "SIGKILL") {
      running.kill(signal);
      await running.exited;
      running = spawnDaemon();
      // a start loads and verifies every program: seconds on a busy machine
      await running.waitFor(/^moat is running/, 60_000);
      return running;
    },
    // whole or not at all (written beside it, then renamed), as editors and configuration
    // management replace a file: a reload that a SIGHUP started meanwhile never reads half of it
    writePolicy: (text) => {
      writeFileSync(`${policyPath}.new`, text);
      renameSync(`${policyPath}.new`, policyPath);
    },
    audit: () => (existsSync(auditPath) ? readFileSync(auditPath, "utf8") : ""),
    async auditHas(pattern, ms = 10_000) {
      const read = () => (existsSync(auditPath) ? readFileSync(auditPath, "utf8") : "");
      try {
        return await until(
          `an audit line matching ${pattern}`,
          () => {
            const text = read();
            return pattern.test(text) ? text : undefined;
          },
          ms,
          50,
        );
      } catch (err) {
        throw new Error(`${(err as Error).message}; the audit log:\n${read()}`);
      }
    },
    scan(ports, target = lab.v4.b) {
      const r = spawnSync(
        "ip",
        [
          "netns",
          "exec",
          lab.a,
          "nmap",
          "-sS",
          "-Pn",
          "-n",
          "--max-retries",
          "1",
          "--initial-rtt-timeout",
          "100ms",
          "--max-rtt-timeout",
          "300ms",
          "-p",
          ports.join(","),
          ...(target.includes(":") ? ["-6"] : []),
          target,
        ],
        { encoding: "utf8", timeout: 30_000 },
      );
      const states = new Map<number, string>();
      for (const m of r.stdout.matchAll(/^(\d+)\/tcp\s+(\S+)/gm))
        states.set(Number(m[1]), m[2] ?? "");
      // nmap folds ports of one state into "Not shown: N filtered tcp ports"
      const folded = /Not shown: \d+ (\S+) tcp ports/.exec(r.stdout)?.[1];
      for (const p of ports) if (!states.has(p) && folded) states.set(p, folded);
      return states;
    },
    curl(url, extra = []) {
      const r = spawnSync(
        "ip",
        ["netns", "exec", lab.a, "curl", "-sS", "--max-time", "3", ...extra, url],
        {
          encoding: "utf8",
          timeout: 60_000,
        },
      );
      return { status: r.status ?? -1, body: r.stdout };
    },
    async close() {
      running.kill("SIGTERM");
      await Promise.race([running.exited, new Promise((r) => setTimeout(r, 5000))]);
      running.kill("SIGKILL");
      for (const c of children) c.kill();
      spawnSync("rm", ["-rf", pinDir]);
      rmSync(dir, { recursive: true, force: true });
      lab.cleanup();
    },
  };
  return result;
}

/**
 * The test servers (servers.ts) in namespace a, the remote side, for labs where moat's host
 * (namespace b) connects out. Resolves once they listen; kill() them when done.
 */
export async function startPeerServers(lab: Lab, specs: string[]): Promise<LineChild> {
  const peer = spawnLines("ip", [
    "netns",
    "exec",
    lab.a,
    NODE,
    "--disable-warning=ExperimentalWarning",
    `${ROOT}test/helpers/servers.ts`,
    ...specs,
  ]);
  try {
    await peer.waitFor(/^listening$/);
  } catch (err) {
    peer.kill();
    throw err;
  }
  return peer;
}

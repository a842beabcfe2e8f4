// A network-namespace lab for tests: names derived from the test name and the test process's pid
// (two runs at once never share a namespace), everything removed on every exit path (call
// lab.cleanup() in a finally/after hook; it never throws).
import { execFileSync, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { sweepStale } from "./cgroup-run.ts";

export function sh(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
}

/** Runs a command and returns its exit status (never throws). */
export function status(cmd: string, args: string[], timeoutMs = 10_000): number {
  const r = spawnSync(cmd, args, { stdio: "ignore", timeout: timeoutMs });
  return r.status ?? -1;
}

/** A short, stable tag for a test name (interface names have a 15-char limit). */
export function tagFor(testName: string): string {
  return createHash("sha1").update(testName).digest("hex").slice(0, 6);
}

export interface Lab {
  tag: string;
  /** namespace names */
  a: string;
  b: string;
  /** interface names: ifA in namespace a, ifB in namespace b */
  ifA: string;
  ifB: string;
  /** addresses: a = .1, b = .2 (v4 /24 and v6 /64), b also has .3 */
  v4: { a: string; b: string; b2: string };
  v6: { a: string; b: string };
  inA(cmd: string, args: string[], timeoutMs?: number): number;
  inB(cmd: string, args: string[], timeoutMs?: number): number;
  cleanup(): void;
}

/** A namespace name for this test process; what a killed run leaves is swept by its pid. */
export function labNamespace(tag: string, role: string): string {
  return `moat-test-${tag}${role}-${process.pid}`;
}

/** A bpffs pin directory for this test process; what a killed run leaves is swept by its pid. */
export function labPinDir(tag: string, kind = ""): string {
  return `/sys/fs/bpf/moat-test-${kind}${tag}-${process.pid}`;
}

/** Two namespaces joined by a veth pair, named after the test and this process. */
export function createLab(testName: string): Lab {
  sweepStale(); // what killed runs left behind
  const tag = tagFor(testName);
  const octet = parseInt(tag.slice(0, 2), 16);
  const lab: Lab = {
    tag,
    a: labNamespace(tag, "a"),
    b: labNamespace(tag, "b"),
    ifA: `mt${tag}a`,
    ifB: `mt${tag}b`,
    v4: { a: `10.231.${octet}.1`, b: `10.231.${octet}.2`, b2: `10.231.${octet}.3` },
    v6: { a: `fd00:231:${octet.toString(16)}::1`, b: `fd00:231:${octet.toString(16)}::2` },
    inA: (cmd, args, t) => status("ip", ["netns", "exec", lab.a, cmd, ...args], t),
    inB: (cmd, args, t) => status("ip", ["netns", "exec", lab.b, cmd, ...args], t),
    cleanup: () => {
      for (const ns of [lab.a, lab.b]) status("ip", ["netns", "del", ns]);
    },
  };
  try {
    sh("ip", ["netns", "add", lab.a]);
    sh("ip", ["netns", "add", lab.b]);
    sh("ip", [
      "link",
      "add",
      lab.ifA,
      "netns",
      lab.a,
      "type",
      "veth",
      "peer",
      lab.ifB,
      "netns",
      lab.b,
    ]);
    for (const [ns, nic, v4, v6, extra] of [
      [lab.a, lab.ifA, lab.v4.a, lab.v6.a, null],
      [lab.b, lab.ifB, lab.v4.b, lab.v6.b, lab.v4.b2],
    ] as const) {
      const ip = (...args: string[]) => sh("ip", ["-n", ns, ...args]);
      ip("addr", "add", `${v4}/24`, "dev", nic);
      if (extra) ip("addr", "add", `${extra}/24`, "dev", nic);
      ip("-6", "addr", "add", `${v6}/64`, "dev", nic, "nodad");
      ip("link", "set", nic, "up");
      ip("link", "set", "lo", "up");
    }
    return lab;
  } catch (err) {
    lab.cleanup();
    throw err;
  }
}

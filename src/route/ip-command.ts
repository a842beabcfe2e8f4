// Runs iproute2 in the namespace the mirror watches: `ip -n NAME` for named namespaces,
// nsenter for a namespace given by path (a container's /proc/PID/ns/net).
import { execFile } from "node:child_process";

export interface NamespaceOptions {
  /** a name under /run/netns (ip netns add); absent = this process's namespace */
  netns?: string;
  /** a namespace file, e.g. /proc/1234/ns/net; used when `netns` is absent */
  netnsPath?: string;
}

export class IpCommandError extends Error {
  readonly code = "ROUTE_IP_FAILED";
  readonly argv: string[];
  constructor(argv: string[], detail: string) {
    super(`${argv.join(" ")}: ${detail}`);
    this.argv = argv;
  }
}

/** The argv that runs `ip ARGS` in the namespace. */
export function ipArgv(ns: NamespaceOptions, args: string[]): string[] {
  if (ns.netns) return ["ip", "-n", ns.netns, ...args];
  if (ns.netnsPath) return ["nsenter", `--net=${ns.netnsPath}`, "ip", ...args];
  return ["ip", ...args];
}

export function runIp(ns: NamespaceOptions, args: string[], timeoutMs = 5_000): Promise<string> {
  const [cmd = "ip", ...rest] = ipArgv(ns, args);
  return new Promise((resolve, reject) => {
    execFile(
      cmd,
      rest,
      { encoding: "utf8", timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 },
      (err, stdout, stderr) => {
        if (err) reject(new IpCommandError([cmd, ...rest], stderr.trim() || err.message));
        else resolve(stdout);
      },
    );
  });
}

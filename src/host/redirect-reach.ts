// Whether each redirect's target is reachable from the network namespaces of the clients the
// redirect can send there (this host's, and those of the processes in the cgroups it names),
// checked at load so a redirect never sends connections into a route that drops them: each
// problem is a diagnostic at the redirect's position (docs/redirect.md).
import { execFileSync } from "node:child_process";
import { readFileSync, readlinkSync } from "node:fs";
import { join } from "node:path";
import { diagnostic, type Diagnostic } from "../config/diagnostics.ts";
import type { PolicyModel, Redirect } from "../config/model.ts";
import { findCgroup2Mount } from "../attribution/index.ts";
import { cgroupMatches, type ProcessUniverse } from "../policy/compile/process.ts";

/** `ip -j route get ADDR` in a namespace (none: moat's own): the route's type, or the error. */
export type RouteProbe = (ip: string, netnsPath?: string) => { type: string } | { error: string };

export const ipRouteGet: RouteProbe = (ip, netnsPath) => {
  const argv = ["ip", "-j", "route", "get", ip];
  const [cmd = "ip", ...args] = netnsPath ? ["nsenter", `--net=${netnsPath}`, ...argv] : argv;
  try {
    const out = execFileSync(cmd, args, {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "pipe"],
      timeout: 5000,
    });
    const routes = JSON.parse(out) as { type?: string }[];
    return { type: routes[0]?.type ?? "unicast" };
  } catch (err) {
    const stderr = (err as { stderr?: string }).stderr?.trim();
    return { error: stderr || (err as Error).message };
  }
};

const UNUSABLE = new Set(["unreachable", "blackhole", "prohibit", "throw"]);

const isLoopback = (r: Redirect): boolean =>
  r.to.family === 4 ? r.to.ip.startsWith("127.") : r.to.ip === "::1";

/** The network namespaces (by /proc/PID/ns/net) of the processes in the cgroups `r` names. */
function clientNamespaces(
  r: Redirect,
  universe: ProcessUniverse,
  cgroupRoot: string,
): Map<string, string> {
  const out = new Map<string, string>();
  const p = r.process;
  if (!p || (!p.cgroup && !p.container)) return out;
  for (const c of universe.cgroups) {
    if (!cgroupMatches(p, c)) continue;
    let pids: string[] = [];
    try {
      pids = readFileSync(join(cgroupRoot, c.path, "cgroup.procs"), "utf8")
        .split("\n")
        .filter(Boolean);
    } catch {
      continue; // gone meanwhile
    }
    for (const pid of pids) {
      try {
        const ns = readlinkSync(`/proc/${pid}/ns/net`);
        if (!out.has(ns)) out.set(ns, `/proc/${pid}/ns/net`);
      } catch {
        // exited
      }
    }
  }
  return out;
}

export function unreachableTargets(
  model: PolicyModel,
  universe: ProcessUniverse | null,
  probe: RouteProbe = ipRouteGet,
): Diagnostic[] {
  const out: Diagnostic[] = [];
  const own = readlinkSync("/proc/self/ns/net");
  const mount = findCgroup2Mount();
  for (const r of model.redirects) {
    const to = r.to.family === 6 ? `[${r.to.ip}]:${r.to.port}` : `${r.to.ip}:${r.to.port}`;
    const check = (where: string, netnsPath?: string) => {
      const route = probe(r.to.ip, netnsPath);
      const why =
        "error" in route ? route.error : UNUSABLE.has(route.type) ? `a ${route.type} route` : null;
      if (why)
        out.push(
          diagnostic(r.pos, `redirect '${r.name}': ${to} is not reachable from ${where} (${why})`),
        );
    };
    check("this host's network namespace");
    if (!universe || !mount) continue;
    for (const [ns, path] of clientNamespaces(r, universe, mount.mountPoint)) {
      if (ns === own) continue;
      if (isLoopback(r)) {
        out.push(
          diagnostic(
            r.pos,
            `redirect '${r.name}': ${to} is a loopback address, but processes it matches run in another network namespace (${ns}), where it is their own loopback, not moat's: use an address of this host they can reach`,
          ),
        );
        break;
      }
      check(`the network namespace ${ns} of processes it matches`, path);
    }
  }
  return out;
}

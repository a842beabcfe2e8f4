// Which redirects the socket hooks can carry out (docs/redirect.md), checked at load so a redirect
// is never silently ignored: each problem is a diagnostic at the redirect's position.
//  - redirectProblems: what the policy text alone decides (connect() facts, attach.cgroup);
//  - unreachableTargets: whether each target is reachable from the network namespaces of the
//    clients the redirect can send there (this host's, and those of the cgroups it names).
import { execFileSync } from "node:child_process";
import { readFileSync, readlinkSync } from "node:fs";
import { join } from "node:path";
import { diagnostic, type Diagnostic } from "../config/diagnostics.ts";
import type { PolicyModel, Redirect } from "../config/model.ts";
import { findCgroup2Mount } from "../attribution/cgroup-mount.ts";
import { cgroupMatches, commRange, type ProcessUniverse } from "./compile/process.ts";

const TCP = 6;
const UDP = 17;

export function redirectProblems(model: PolicyModel): Diagnostic[] {
  const out: Diagnostic[] = [];
  for (const r of model.redirects) {
    const refuse = (message: string) =>
      out.push(diagnostic(r.pos, `redirect '${r.name}': ${message}`));
    if (!model.attach.cgroup)
      refuse(`set attach.cgroup (e.g. "/") so the socket hooks see the connections to redirect`);
    if (r.direction === "ingress")
      refuse("redirects act on connections this host opens (connect()): use 'direction: egress'");
    if (r.layer3?.local || r.layer4?.sourcePorts)
      refuse(
        "connect() knows neither the local address nor the source port: match on the remote side, protocol, port, process or interface",
      );
    if (r.layer7) refuse("a redirect is decided at connect(), before any layer 7 data");
    const protocol = r.layer4?.protocol ?? null;
    if (protocol !== null && protocol !== TCP && protocol !== UDP)
      refuse("only tcp and udp connections can be redirected");
    if (r.proxyProtocol && protocol === UDP)
      refuse(
        `proxy_protocol ${r.proxyProtocol} is a header on a tcp stream: the redirect matches udp`,
      );
    for (const name of r.process?.name ?? []) {
      if (!commRange(name))
        refuse(
          `process name '${name}': the kernel matches a name (at most 15 bytes) exactly or by a trailing '*' only`,
        );
    }
  }
  return out;
}

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

// moat's DNS proxy in the network namespaces of containers (docs/dns.md, "Containers"): the
// kernel's DNS redirect sends a query to 127.0.0.1 of the caller's own namespace, so each
// namespace of a process under attach.cgroup gets the proxy's sockets inside it, and the kernel
// learns their ports by the namespace's cookie. Found when the host watch fires (a cgroup
// appears or gets its first process, and every 60 s) and 1 s and 5 s after; a namespace whose processes are all gone is let go. One that a
// user namespace other than moat's owns (a rootless container's, `unshare -rn`'s) is served too,
// but no answer asked there binds a name (src/dns/trusted.ts says why).
import { closeSync, openSync } from "node:fs";
import type { Datapath } from "../datapath/index.ts";
import type { DnsProxy } from "../dns/index.ts";
import { networkNamespacesUnder } from "../host/index.ts";

export interface NetnsServeOptions {
  proxy: DnsProxy | null;
  datapath: Pick<Datapath, "setNetnsPorts">;
  /** attach.cgroup's directory when the running policy uses names; else null (serve none). */
  cgroupDir: () => string | null;
  log: (line: string) => void;
}

interface Served {
  /** An open fd of the namespace: keeps it reachable (/proc/self/fd/N) while served. */
  fd: number;
  cookie: bigint;
}

export interface NetnsServe {
  /** Looks for namespaces that came or went (runs one pass at a time; resolves when done). */
  refresh(): Promise<void>;
  /**
   * Looks now and again shortly after: a process that has just joined a cgroup may make its
   * network namespace right after (a container runtime, `unshare -n`), which no event reports.
   */
  refreshAfterChange(): void;
  close(): void;
}

/** When to look again after a host change (ms after it). */
const FOLLOW_UPS_MS = [1_000, 5_000];

export function serveNamespaces(options: NetnsServeOptions): NetnsServe {
  const { proxy, datapath, log } = options;
  const served = new Map<string, Served>();
  let running: Promise<void> | null = null;
  let again = false;
  let closed = false;

  const drop = (id: string, why: string) => {
    const s = served.get(id);
    if (!s) return;
    served.delete(id);
    datapath.setNetnsPorts(s.cookie, null);
    proxy?.unserveNetns(id);
    closeSync(s.fd);
    log(`dns proxy: no longer serving network namespace ${id} (${why})`);
  };

  const pass = async () => {
    const dir = proxy ? options.cgroupDir() : null;
    const now = dir ? networkNamespacesUnder(dir) : new Map<string, number>();
    for (const id of [...served.keys()]) if (!now.has(id)) drop(id, "no process of it left");
    for (const [id, pid] of now) {
      if (served.has(id) || !proxy || closed) continue;
      let fd: number;
      try {
        fd = openSync(`/proc/${pid}/ns/net`, "r");
      } catch {
        continue; // exited meanwhile: the next pass sees another process or none
      }
      try {
        const ports = await proxy.serveNetns(id, `/proc/self/fd/${fd}`);
        datapath.setNetnsPorts(ports.cookie, { udp: ports.udp, tcp: ports.tcp });
        served.set(id, { fd, cookie: ports.cookie });
        log(
          `dns proxy: serving network namespace ${id} (pid ${pid}) on 127.0.0.1:${ports.udp}${servedNote(ports.namespace)}`,
        );
      } catch (err) {
        closeSync(fd);
        log(`warning: dns proxy: cannot serve network namespace ${id}: ${(err as Error).message}`);
      }
    }
  };

  const refresh = (): Promise<void> => {
    if (running) {
      again = true;
      return running;
    }
    running = (async () => {
      do {
        again = false;
        try {
          await pass();
        } catch (err) {
          log(`warning: dns proxy: looking for network namespaces: ${(err as Error).message}`);
        }
      } while (again && !closed);
      running = null;
    })();
    return running;
  };

  let followUps: NodeJS.Timeout[] = [];
  const refreshAfterChange = () => {
    void refresh();
    for (const t of followUps) clearTimeout(t);
    followUps = FOLLOW_UPS_MS.map((ms) => setTimeout(() => void refresh(), ms).unref());
  };

  return {
    refresh,
    refreshAfterChange,
    close() {
      closed = true;
      for (const t of followUps) clearTimeout(t);
      for (const id of [...served.keys()]) drop(id, "moat stops");
    },
  };
}

/** What the serving line adds for a namespace whose answers bind nothing. */
function servedNote(namespace: "container" | "user-owned"): string {
  return namespace === "user-owned"
    ? "; not owned by moat's user namespace (its user decides where its queries go): its answers bind no names"
    : "";
}

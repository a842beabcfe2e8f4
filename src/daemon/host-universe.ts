// What process and interface rules name on this host (executables, users, cgroups and their
// containers, links and routes) comes and goes: the policy is compiled against what is there
// now, and compiled again when that changes. Changes are learnt from the kernel as they happen:
// rtnetlink events for links, addresses, routes and rules; inotify for cgroups (a container
// starting or stopping: a change only when a rule names a cgroup or a container), /etc/passwd and
// the directories process rules' path globs look in.
// A slow re-read remains for what no event reports: a file deeper than a glob's directory (one
// inotify watch per directory of a whole tree costs more than the read), a container renamed
// in its runtime's state files, a process moved into a cgroup that already had others.
import type { Attribution } from "../attribution/index.ts";
import type { PolicyModel } from "../config/index.ts";
import { namesProcesses, type ProcessUniverse, type UniverseQuery } from "../policy/index.ts";
import {
  processDirectories,
  readProcessUniverse,
  readQueriedUniverse,
  universeFingerprint,
  watchCgroups,
  watchDirs,
  type WatchedDir,
} from "../host/index.ts";
import { readRouteImageSync, type BuiltImage } from "../route/index.ts";

/** The slow re-read for what no event reports (see above). */
const RESYNC_MS = 60_000;

export interface HostUniverse {
  /** Reads what a policy's process rules ask of this host; the compiler's universe. */
  read(query: UniverseQuery): ProcessUniverse;
  /** Whether what `model`'s process rules name differs from the last read. */
  changed(model: PolicyModel): boolean;
  /** The kernel says links, addresses, routes or rules changed: the next read reads them anew. */
  routesChanged(): void;
  /** The directories whose entries `model`'s process rules depend on. */
  directories(model: PolicyModel): readonly WatchedDir[];
}

export function hostUniverse(attribution: Attribution): HostUniverse {
  let resolved = "";
  // one read of links and routes serves every compile until rtnetlink reports a change
  let routes: BuiltImage | undefined;
  const routeReader = () => (routes ??= readRouteImageSync());
  return {
    read(query) {
      const u = readQueriedUniverse(query, attribution, routeReader);
      resolved = universeFingerprint(u);
      return u;
    },
    changed(model) {
      if (!namesProcesses(model)) return false;
      const u = readProcessUniverse(model, attribution, routeReader);
      return universeFingerprint(u) !== resolved;
    },
    routesChanged() {
      routes = undefined;
    },
    directories: processDirectories,
  };
}

export interface HostWatch {
  /** Watches the directories the running policy depends on (after each applied policy). */
  follow(dirs: readonly WatchedDir[]): void;
  close(): void;
}

export interface HostWatchSources {
  cgroupMount: string | null;
  /** Subscribes to this namespace's link, address, route and rule changes (rtnetlink). */
  routeEvents: (onChange: () => void) => { close(): void };
  /** Called before `check` when rtnetlink reported a change. */
  onRoutes: () => void;
}

/**
 * Calls `check` when something process or interface rules name may have changed: at once on
 * kernel events (bursts merged), and every RESYNC_MS for what no event reports.
 */
export function watchHost(check: () => void, sources: HostWatchSources): HostWatch {
  const timer = setInterval(check, RESYNC_MS);
  timer.unref();
  const cgroups = sources.cgroupMount ? watchCgroups(sources.cgroupMount, check) : null;
  const dirs = watchDirs(check);
  const routes = sources.routeEvents(() => {
    sources.onRoutes();
    check();
  });
  return {
    follow: (d) => dirs.set(d),
    close() {
      clearInterval(timer);
      cgroups?.close();
      dirs.close();
      routes.close();
    },
  };
}

/** `run` at most once at a time: calls during a run lead to one more run after it. */
export function coalesced(run: () => Promise<void>): () => void {
  let running = false;
  let again = false;
  const start = (): void => {
    if (running) {
      again = true;
      return;
    }
    running = true;
    again = false;
    void run().finally(() => {
      running = false;
      if (again) start();
    });
  };
  return start;
}

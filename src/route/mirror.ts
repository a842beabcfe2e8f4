// Keeps a route image current: `ip monitor route link` output is only a trigger (iproute2 6.1
// prints text there even with -j), each burst of events leads to one fresh `ip -j` read.
import type { ChildProcess } from "node:child_process";
import { spawnIp, type NamespaceOptions } from "./ip-command.ts";
import { lookup } from "./lookup.ts";
import { readRouteImage } from "./read.ts";
import type { RouteEntry, RouteImage, RouteSnapshot } from "./types.ts";

export interface RouteMirrorOptions extends NamespaceOptions {
  /** wait this long after the first event of a burst before re-reading (default 100 ms) */
  debounceMs?: number;
  /** re-read this often even without events, a safety net for missed ones (default 30 s; 0 = never) */
  resyncMs?: number;
  /** a read or the monitor failed; the last good image stays in use */
  onError?: (err: Error) => void;
}

export type RouteChangeListener = (snapshot: RouteSnapshot) => void;

export interface RouteMirror {
  /** bumps on every image change */
  readonly generation: number;
  snapshot(): RouteSnapshot;
  lookup(address: string | Uint8Array): RouteEntry | null;
  /** called after each change of the image; returns a function that unsubscribes */
  onChange(listener: RouteChangeListener): () => void;
  /** re-reads now (after any read in flight) and resolves with the resulting snapshot */
  refresh(): Promise<RouteSnapshot>;
  /** stops the monitor process and timers */
  close(): Promise<void>;
}

/** A stable text of the image: equal text = the kernel map needs no update. */
export function imageFingerprint(image: RouteImage): string {
  const row = (e: RouteEntry) =>
    `${Buffer.from(e.addr).toString("hex")}/${e.prefixlen}>${e.ifindex}:${e.ifname}:${+e.tunnel}${+e.reject}`;
  return `${image.v4.map(row).join(",")}|${image.v6.map(row).join(",")}`;
}

const RESPAWN_MS = 1_000;
/** ip subscribes to netlink a moment after it starts: one more read covers changes made meanwhile */
const SETTLE_MS = 250;

export async function startRouteMirror(options: RouteMirrorOptions = {}): Promise<RouteMirror> {
  const ns: NamespaceOptions = { netns: options.netns, netnsPath: options.netnsPath };
  const debounceMs = options.debounceMs ?? 100;
  const resyncMs = options.resyncMs ?? 30_000;
  const report = options.onError ?? (() => {});
  const listeners = new Set<RouteChangeListener>();

  let current: RouteSnapshot = { generation: 0, image: { v4: [], v6: [] }, links: [], notes: [] };
  let fingerprint = "";
  let closed = false;
  let monitor: ChildProcess | undefined;
  let debounce: NodeJS.Timeout | undefined;
  let respawn: NodeJS.Timeout | undefined;
  let resync: NodeJS.Timeout | undefined;
  // reads never overlap: a request during a read runs once more after it
  let reading: Promise<RouteSnapshot> | undefined;
  let again = false;

  async function readOnce(): Promise<RouteSnapshot> {
    const built = await readRouteImage(ns);
    const next = imageFingerprint(built.image);
    const changed = next !== fingerprint;
    fingerprint = next;
    current = { ...built, generation: current.generation + (changed ? 1 : 0) };
    if (changed && current.generation > 1)
      for (const l of listeners) {
        // a failing listener must not stop the others or the mirror
        try {
          l(current);
        } catch (err) {
          report(err instanceof Error ? err : new Error(String(err)));
        }
      }
    return current;
  }

  function refresh(): Promise<RouteSnapshot> {
    if (reading) {
      // the loop below sees this before it ends, so the read in flight is followed by another
      again = true;
      return reading;
    }
    reading = (async () => {
      try {
        do {
          again = false;
          await readOnce();
        } while (again && !closed);
        return current;
      } finally {
        reading = undefined;
      }
    })();
    return reading;
  }

  const background = () => {
    if (!closed) refresh().catch((err: Error) => report(err));
  };

  const trigger = () => {
    if (debounce || closed) return;
    debounce = setTimeout(() => {
      debounce = undefined;
      background();
    }, debounceMs);
  };

  function spawnMonitor(): Promise<void> {
    const child = spawnIp(ns, ["monitor", "route", "link"]);
    monitor = child;
    let stderr = "";
    child.stdout?.on("data", trigger);
    child.stderr?.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("exit", (code, signal) => {
      if (monitor === child) monitor = undefined;
      if (closed) return;
      report(new Error(`ip monitor exited (${signal ?? code}): ${stderr.trim()}`));
      respawn = setTimeout(() => {
        spawnMonitor().then(background, (err: Error) => report(err));
      }, RESPAWN_MS);
    });
    return new Promise((resolve, reject) => {
      child.once("spawn", resolve);
      child.once("error", reject);
    });
  }

  await spawnMonitor();
  try {
    await refresh();
  } catch (err) {
    closed = true;
    monitor?.kill();
    throw err;
  }
  const settle = setTimeout(background, SETTLE_MS);
  if (resyncMs > 0) {
    resync = setInterval(background, resyncMs);
    resync.unref();
  }

  return {
    get generation() {
      return current.generation;
    },
    snapshot: () => current,
    lookup: (address) => lookup(current.image, address),
    onChange(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    refresh,
    async close() {
      if (closed) return;
      closed = true;
      for (const t of [debounce, respawn, settle]) clearTimeout(t);
      clearInterval(resync);
      const child = monitor;
      if (child && child.exitCode === null && child.signalCode === null) {
        const gone = new Promise((resolve) => child.once("exit", resolve));
        child.kill("SIGTERM");
        await gone;
      }
      await reading?.catch(() => undefined);
    },
  };
}

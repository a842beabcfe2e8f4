// Keeps a route image current: the namespace's rtnetlink events (links, addresses, routes,
// rules; the caller's watch, src/datapath/rtnl-watch.ts, already merges a burst) are only a
// trigger, each leading to one fresh read. The watch is subscribed before the first read, so
// nothing made meanwhile is missed, and it reports lost events, so no periodic re-read is needed.
import type { NamespaceOptions } from "./ip-command.ts";
import { lookup } from "./lookup.ts";
import { readRouteImage } from "./read.ts";
import type { RouteEntry, RouteImage, RouteSnapshot } from "./types.ts";

/** Subscribes to a namespace's link, address, route and rule changes; one call per burst. */
export type RouteEvents = (onChange: () => void) => { close(): void };

export interface RouteMirrorOptions extends NamespaceOptions {
  /** the namespace's kernel events (the daemon passes the datapath's watchRtnl) */
  events: RouteEvents;
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
  /** stops watching */
  close(): Promise<void>;
}

/** A stable text of the image: equal text = the kernel map needs no update. */
export function imageFingerprint(image: RouteImage): string {
  const row = (e: RouteEntry) =>
    `${Buffer.from(e.addr).toString("hex")}/${e.prefixlen}>${e.ifindex}:${e.ifname}:${+e.tunnel}${+e.reject}`;
  return `${image.v4.map(row).join(",")}|${image.v6.map(row).join(",")}`;
}

export async function startRouteMirror(options: RouteMirrorOptions): Promise<RouteMirror> {
  const ns: NamespaceOptions = { netns: options.netns, netnsPath: options.netnsPath };
  const report = options.onError ?? (() => {});
  const listeners = new Set<RouteChangeListener>();

  let current: RouteSnapshot = { generation: 0, image: { v4: [], v6: [] }, links: [], notes: [] };
  let fingerprint = "";
  let closed = false;
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

  const events = options.events(background);
  try {
    await refresh();
  } catch (err) {
    closed = true;
    events.close();
    throw err;
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
      events.close();
      await reading?.catch(() => undefined);
    },
  };
}

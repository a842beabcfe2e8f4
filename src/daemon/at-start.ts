// The parts of the policy the daemon reads once, at start (a reload notes a change to them and
// keeps them): the event history store and the API's listeners. The command line overrides both.
import type { PolicyModel } from "../config/index.ts";
import { DEFAULT_SOCKET, type ListenerOptions } from "../api/index.ts";
import { HistoryWorker } from "../observe/index.ts";

export const DEFAULT_HISTORY = "/var/lib/moat/history.db";

/** The event history store: the policy's, unless `path` overrides it (null: no history). */
export function historyStore(
  model: PolicyModel,
  path: string | null | undefined,
): HistoryWorker | null {
  const conf = model.logging.history?.value;
  const where = path === undefined ? (conf?.path ?? DEFAULT_HISTORY) : path;
  if (where === null) return null;
  return new HistoryWorker(where, {
    ...(conf?.maxAgeSeconds ? { maxAgeSeconds: conf.maxAgeSeconds } : {}),
    ...(conf?.maxBytes ? { maxBytes: conf.maxBytes } : {}),
  });
}

/**
 * Where the API listens: the root-only unix socket (`socket` overrides the policy's; null: none),
 * and a TCP listener in addition when the policy asks for one.
 */
export function apiListeners(
  model: PolicyModel,
  socket: string | null | undefined,
): ListenerOptions[] {
  const unix = socket === undefined ? DEFAULT_SOCKET : socket;
  const conf = model.api?.value;
  const listeners: ListenerOptions[] = [];
  // the policy may move the unix socket; a TCP listener comes in addition to it
  if (conf?.listen.startsWith("unix:") && socket === undefined)
    listeners.push({ listen: conf.listen });
  else if (unix !== null) listeners.push({ listen: `unix:${unix}` });
  if (conf && !conf.listen.startsWith("unix:")) {
    listeners.push({
      listen: conf.listen,
      ...(conf.tokenFile ? { tokenFile: conf.tokenFile } : {}),
      ...(conf.tls ? { tls: conf.tls } : {}),
    });
  }
  return listeners;
}

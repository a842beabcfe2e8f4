// The daemon's API server: started once its parts are wired, closed on stop (also when stop
// comes before the listeners are up). A listener that cannot start stops the daemon.
import { startApi, type ApiControl, type ApiServer, type ListenerOptions } from "../api/index.ts";

export interface ServedApi {
  /** Resolves once the API listens; rejects (after `onFail`) if it cannot. */
  ready: Promise<void>;
  addresses(): string[];
  close(): Promise<void>;
}

export function serveApi(
  control: ApiControl,
  listeners: ListenerOptions[],
  onFail: () => void,
): ServedApi {
  let server: ApiServer | null = null;
  let closed = false;
  const ready = startApi(control, listeners).then(
    (s) => {
      server = s;
      for (const address of s.addresses) control.log(`api listening on ${address}`);
      if (closed) void s.close();
    },
    (err: unknown) => {
      onFail();
      throw err;
    },
  );
  return {
    ready,
    addresses: () => server?.addresses ?? [],
    async close() {
      closed = true;
      await server?.close();
    },
  };
}

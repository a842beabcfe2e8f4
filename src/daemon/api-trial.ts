// The API's listeners tried before the datapath starts: a socket path taken by a file or by a
// running daemon, a TCP port in use, an unreadable token or TLS file fail the start while nothing
// is attached or adopted yet. Each listener is opened as the API opens it, then closed again (the
// API itself opens once the daemon's parts are wired).
import { startApi, type ApiControl, type ListenerOptions } from "../api/index.ts";

/** Answers nothing: no request reaches it in the moment its listeners are open. */
const refusing = new Proxy({} as ApiControl, {
  get: (_, name) =>
    name === "log"
      ? () => {}
      : () => {
          throw new Error("the daemon is starting");
        },
});

/** Rejects with the error the API's start would give. */
export async function tryListeners(listeners: ListenerOptions[]): Promise<void> {
  if (listeners.length === 0) return;
  const server = await startApi(refusing, listeners);
  await server.close();
}

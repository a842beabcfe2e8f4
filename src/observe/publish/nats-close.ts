// Closing a NATS connection without waiting on a server that stopped reading: a drain waits for
// the server, so it is bounded, and the connection is closed regardless after it.
import type { NatsConnection } from "nats";

export async function closeBounded(nc: NatsConnection | undefined, ms: number): Promise<void> {
  if (!nc || nc.isClosed()) return;
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    nc.drain().catch(() => undefined),
    new Promise((resolve) => (timer = setTimeout(resolve, ms))),
  ]);
  clearTimeout(timer);
  if (!nc.isClosed()) await nc.close().catch(() => undefined);
}

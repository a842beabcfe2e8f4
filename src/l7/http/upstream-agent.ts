// The upstream of one client connection: one socket to the original destination at a time, opened
// through the relay (so moat's hooks let it through) when the first allowed request needs it, and
// kept alive for the next.
import type { ClientRequestArgs } from "node:http";
import type { Socket } from "node:net";
import type { Duplex } from "node:stream";
import { http } from "./node-http.ts";

const { Agent } = http;

export class UpstreamAgent extends Agent {
  private readonly open: () => Promise<Socket>;

  constructor(open: () => Promise<Socket>) {
    super({ keepAlive: true, maxSockets: 1 });
    this.open = open;
  }

  override createConnection(
    _options: ClientRequestArgs,
    callback?: (err: Error | null, stream: Duplex) => void,
  ): Duplex | null | undefined {
    this.open().then(
      (socket) => callback?.(null, socket),
      (err: unknown) =>
        callback?.(err instanceof Error ? err : new Error(String(err)), undefined as never),
    );
    return undefined;
  }
}

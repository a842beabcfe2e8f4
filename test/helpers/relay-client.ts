// A test's client of moat's L7 relay: a plain TCP connection to the relay's own address that
// gathers everything the relay sends back until it closes.
import { connect, type Socket } from "node:net";
import type { L7Relay } from "../../src/l7/index.ts";

export interface RelayClient {
  socket: Socket;
  /** What it received so far (latin1). */
  text(): string;
  /** The socket's error code, if it failed. */
  error(): string | null;
  /** Resolves when the connection closes. */
  closed: Promise<void>;
  /** Waits until the text matches, the connection closes or `ms` pass; the text then. */
  until(pattern: RegExp, ms?: number): Promise<string>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A connection to the relay's IPv4 address, from `localAddress` when given. */
export function relayClient(relay: L7Relay, localAddress?: string): RelayClient {
  const at = relay.addressFor(4)!;
  const s = connect({ host: at.ip, port: at.port, ...(localAddress ? { localAddress } : {}) });
  let text = "";
  let error: string | null = null;
  s.on("data", (d: Buffer) => (text += d.toString("latin1")));
  s.on("error", (e: NodeJS.ErrnoException) => (error = e.code ?? e.message));
  const closed = new Promise<void>((r) => s.once("close", () => r()));
  return {
    socket: s,
    text: () => text,
    error: () => error,
    closed,
    async until(pattern: RegExp, ms = 5000): Promise<string> {
      for (let waited = 0; waited < ms && !pattern.test(text) && !s.destroyed; waited += 10)
        await sleep(10);
      return text;
    },
  };
}

// moat's relay for redirects with `proxy_protocol` (docs/redirect.md): the kernel sends such
// connections here instead of to `to`; the relay looks up where each client meant to go and by
// which redirect, connects to that redirect's `to`, writes the PROXY header (client -> original
// destination), then copies bytes both ways. One listener per address family serves every
// redirect, opened once at start, so a reload never waits for a new one.
// Its own connections are never redirected: `to` is a target, and moat's pid is exempt.
import { createServer, connect, type Server, type Socket } from "node:net";
import type { OriginalDestination, SocketAddress } from "../datapath/redirect-maps.ts";
import type { PolicyImage } from "../policy/compile/kernel-image.ts";
import { proxyHeader } from "./proxy-header.ts";

/** Where a redirect goes and with which header. */
export interface RelayTarget {
  name: string;
  ip: string;
  port: number;
  proxyProtocol?: "v1" | "v2";
}

export interface RelayOptions {
  /** The original destination of a client, by its address as the relay sees it. */
  original: (peer: SocketAddress) => OriginalDestination | null;
  /** Redirect `index` of policy `generation`. */
  redirect: (index: number, generation: number) => RelayTarget | null;
  log: (line: string) => void;
}

function listen(host: string, onConnection: (s: Socket) => void): Promise<Server | null> {
  const server = createServer(onConnection);
  return new Promise((resolve) => {
    server.once("error", () => resolve(null)); // e.g. no IPv6 loopback: that family has no relay
    server.listen({ host, port: 0, exclusive: true }, () => resolve(server));
  });
}

export class Relay {
  private readonly sockets = new Set<Socket>();
  private readonly options: RelayOptions;
  private readonly servers: { 4: Server | null; 6: Server | null } = { 4: null, 6: null };

  private constructor(options: RelayOptions) {
    this.options = options;
  }

  static async open(options: RelayOptions): Promise<Relay> {
    const relay = new Relay(options);
    const handle = (s: Socket) => relay.relay(s);
    [relay.servers[4], relay.servers[6]] = await Promise.all([
      listen("127.0.0.1", handle),
      listen("::1", handle),
    ]);
    return relay;
  }

  /** Where the kernel sends a redirect's connections of this address family, if it can. */
  addressFor(family: 4 | 6): SocketAddress | null {
    const bound = this.servers[family]?.address();
    if (!bound || typeof bound === "string") return null;
    return { ip: bound.address, port: bound.port };
  }

  /** Sends `image`'s redirects that want a PROXY header through this relay (sets their `via`). */
  route(image: PolicyImage): PolicyImage {
    for (const t of image.redirect?.targets ?? []) {
      if (!t.proxyProtocol) continue;
      const via = this.addressFor(t.family);
      if (!via)
        throw new Error(
          `redirect ${t.name}: moat's relay has no IPv${t.family} loopback to listen on`,
        );
      t.via = via;
    }
    return image;
  }

  close(): void {
    for (const s of [this.servers[4], this.servers[6]]) s?.close();
    for (const s of this.sockets) s.destroy();
  }

  private relay(client: Socket): void {
    const { log } = this.options;
    const peer = { ip: client.remoteAddress ?? "", port: client.remotePort ?? 0 };
    const found = this.options.original(peer);
    const target = found && this.options.redirect(found.redirect, found.generation);
    if (!found || !target) {
      log(`relay: no redirected connection from ${peer.ip}:${peer.port}; closed`);
      client.destroy();
      return;
    }
    const header = proxyHeader(target.proxyProtocol ?? "v2", {
      source: peer,
      destination: found.original,
    });
    const upstream = connect({ host: target.ip, port: target.port });
    this.sockets.add(client).add(upstream);
    upstream.once("connect", () => {
      upstream.write(header);
      client.pipe(upstream);
      upstream.pipe(client);
    });
    // either side failing ends both: the client sees its connection reset
    const fail = (side: string) => (err: Error) => {
      log(`relay for redirect ${target.name}: ${side}: ${err.message}`);
      client.destroy();
      upstream.destroy();
    };
    upstream.on("error", fail(`${target.ip}:${target.port}`));
    client.on("error", fail("client"));
    client.on("close", () => this.sockets.delete(client));
    upstream.on("close", () => this.sockets.delete(upstream));
  }
}

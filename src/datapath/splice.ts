// The kernel splice (docs/l7-splice.md): once the relay has decided a connection, its two
// sockets leave Node. "sockmap": moat_splice_verdict sends each socket's bytes to its peer in the
// kernel; "splice": the addon's splice loop moves them with splice(2) when the kernel refuses the
// sockmap; "copy": Node pipes them both ways when neither can be had. The addon takes each
// socket's descriptor (checked against its addresses) and duplicates it; Node's handles close
// at once, and the loop thread does the rest.
import type { Socket } from "node:net";
import { native } from "./addon.ts";
import type { BpfMap, BpfObject, SpliceEnd, SpliceSocket } from "./native.d.ts";

export type SpliceMode = "sockmap" | "splice" | "copy";

export interface SpliceOptions {
  /** Skip the better modes (tests, and a policy that wants bytes to stay visible). */
  force?: SpliceMode;
  /** Called once both directions have ended (or one side was reset, or it was cut). */
  onEnd?: (end: SpliceResult) => void;
  /** Aborted: both sides are reset (a reload no longer lets the connection through). */
  signal?: AbortSignal;
}

export interface SpliceResult {
  mode: SpliceMode;
  toUpstream: number;
  toClient: number;
  end: SpliceEnd["end"];
}

export interface SpliceStats {
  /** Pairs whose directions have not both ended. */
  active: number;
  /** Connections handed over, by how. */
  connections: Record<SpliceMode, number>;
  /** Bytes of the connections that ended, by how (both directions). */
  bytes: Record<SpliceMode, number>;
  /** Why the kernel refused the sockmap, the last time it did. */
  lastRefusal: string | null;
}

const MODES: SpliceMode[] = ["sockmap", "splice", "copy"];

function addressesOf(s: Socket, what: string): SpliceSocket {
  const { localAddress, localPort, remoteAddress, remotePort } = s;
  if (!localAddress || !localPort || !remoteAddress || !remotePort)
    throw new Error(`splice: the ${what} socket is not connected`);
  const fd = descriptorOf(s);
  return { localAddress, localPort, remoteAddress, remotePort, ...(fd === null ? {} : { fd }) };
}

/**
 * The socket's descriptor as libuv holds it (the addon checks it against the addresses; without
 * it the addon looks for the socket among the process's descriptors, which costs more).
 */
function descriptorOf(s: Socket): number | null {
  const fd = (s as unknown as { _handle?: { fd?: unknown } })._handle?.fd;
  return typeof fd === "number" && fd >= 0 ? fd : null;
}

/** Resolves once everything Node was asked to write is in the kernel's socket. */
function flushed(s: Socket): Promise<void> {
  if (s.writableLength === 0 || s.writableEnded) return Promise.resolve();
  return new Promise((resolve, reject) =>
    s.write(Buffer.alloc(0), (err) => (err ? reject(err) : resolve())),
  );
}

/** What Node has read from `s` and nobody consumed. */
function takeBuffered(s: Socket): Buffer {
  const chunks: Buffer[] = [];
  for (let c: unknown = s.read(); c !== null; c = s.read())
    chunks.push(typeof c === "string" ? Buffer.from(c) : (c as Buffer));
  return Buffer.concat(chunks);
}

export class Splicer {
  private readonly maps: { targets: BpfMap; socks: BpfMap; peers: BpfMap };
  private readonly counts = { connections: zero(), bytes: zero(), active: 0 };
  private lastRefusal: string | null = null;

  /** Takes the splice maps of the loaded object and attaches the verdict program to them. */
  constructor(object: BpfObject) {
    this.maps = {
      targets: object.map("splice_targets"),
      socks: object.map("splice_socks"),
      peers: object.map("splice_peers"),
    };
    const verdict = object.program("moat_splice_verdict");
    try {
      native().sockmapAttach(verdict.fd, this.maps.socks);
    } finally {
      verdict.close();
    }
  }

  /**
   * Hands `client` and `upstream` (connected, nothing more to judge) to the kernel, with what
   * Node already read from either and not yet wrote to the other; resolves with how. In the
   * sockmap and splice modes both Socket objects are destroyed (their connections go on).
   */
  async splice(client: Socket, upstream: Socket, options: SpliceOptions = {}): Promise<SpliceMode> {
    for (const s of [client, upstream]) {
      s.pause();
      // a FIN one way must not end the other: the splice passes each FIN on by itself
      s.allowHalfOpen = true;
    }
    // the kernel's bytes come after what Node was asked to write
    await Promise.all([flushed(client), flushed(upstream)]);
    if (options.force === "copy") return this.copy(client, upstream, options);
    // synchronous from here: libuv reads nothing more before the addon holds the sockets
    const toUpstream = takeBuffered(client);
    const toClient = takeBuffered(upstream);
    let mode: SpliceMode = "splice";
    let started!: (mode: SpliceMode) => void;
    const start = new Promise<SpliceMode>((resolve) => (started = resolve));
    try {
      const id = native().splicePair(
        {
          client: addressesOf(client, "client"),
          upstream: addressesOf(upstream, "upstream"),
          toUpstream,
          toClient,
          mode: options.force === "splice" ? "splice" : "sockmap",
          maps: this.maps,
        },
        (how) => {
          mode = how.mode;
          if (how.refused) this.lastRefusal = how.refused;
          this.counts.connections[mode]++;
          started(mode);
        },
        (end) => this.ended(mode, end, options),
      );
      options = cutOnAbort(options, () => native().spliceCut(id));
    } catch (err) {
      this.lastRefusal = (err as Error).message;
      if (toUpstream.length) upstream.write(toUpstream);
      if (toClient.length) client.write(toClient);
      return this.copy(client, upstream, options);
    }
    this.counts.active++;
    // the addon holds its own descriptors: Node's close neither sends a FIN nor reads
    client.destroy();
    upstream.destroy();
    return start;
  }

  /** Connections and bytes by mode. */
  stats(): SpliceStats {
    return {
      active: this.counts.active,
      connections: { ...this.counts.connections },
      bytes: { ...this.counts.bytes },
      lastRefusal: this.lastRefusal,
    };
  }

  /** Connections handed over in any mode (the splicedConnections counter). */
  get connections(): number {
    return MODES.reduce((n, m) => n + this.counts.connections[m], 0);
  }

  close(): void {
    for (const m of Object.values(this.maps)) m.close();
  }

  private ended(mode: SpliceMode, end: SpliceEnd, options: SpliceOptions): void {
    this.counts.active--;
    this.counts.bytes[mode] += end.toUpstream + end.toClient;
    options.onEnd?.({ mode, ...end });
  }

  /** Node pipes both ways; each FIN is passed on (half-close), the pair closes when both ended. */
  private copy(client: Socket, upstream: Socket, options: SpliceOptions): SpliceMode {
    this.counts.connections.copy++;
    this.counts.active++;
    const moved = { toUpstream: 0, toClient: 0 };
    let pending = 2;
    let finished = false;
    const finish = (end: SpliceEnd["end"]): void => {
      if (finished) return;
      finished = true;
      this.ended("copy", { ...moved, end }, options);
      if (end === "reset" || end === "cut") {
        client.resetAndDestroy();
        upstream.resetAndDestroy();
      } else {
        client.destroy();
        upstream.destroy();
      }
    };
    const direction = (from: Socket, to: Socket, key: keyof typeof moved): void => {
      from.on("data", (chunk: Buffer) => (moved[key] += chunk.length));
      const passFin = (): void => {
        to.end(() => {
          if (--pending === 0) finish("closed");
        });
      };
      if (from.readableEnded) passFin();
      else {
        from.once("end", passFin);
        from.pipe(to, { end: false });
      }
      from.once("error", () => finish("reset"));
    };
    direction(client, upstream, "toUpstream");
    direction(upstream, client, "toClient");
    options = cutOnAbort(options, () => finish("cut"));
    return "copy";
  }
}

/** Calls `cut` when the signal aborts (now, if it already has); the returned options' onEnd
 * stops listening. */
function cutOnAbort(options: SpliceOptions, cut: () => void): SpliceOptions {
  const signal = options.signal;
  if (!signal) return options;
  if (signal.aborted) {
    cut();
    return options;
  }
  signal.addEventListener("abort", cut, { once: true });
  return {
    ...options,
    onEnd: (end) => {
      signal.removeEventListener("abort", cut);
      options.onEnd?.(end);
    },
  };
}

function zero(): Record<SpliceMode, number> {
  return { sockmap: 0, splice: 0, copy: 0 };
}

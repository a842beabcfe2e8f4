// The DNS proxy's UDP sockets to the servers it asks, reused across queries: a socket per query
// (create, bind, connect, close) cost more than the rest of the proxy's own work. Each server has
// a few sockets, each bound to a port the kernel picks at random and connected to the server;
// every query goes out under a fresh random id (the client's id is put back in the answer), and a
// socket is replaced after a number of queries, so an off-path forger must still guess both the
// port and the id (RFC 5452) of an answer that would open firewall rules.
//
// A client names the server it asks, any address at all, so the sockets kept are bounded: the
// first KEPT_SERVERS servers asked keep sockets (at most SOCKETS each), a server not asked for
// IDLE_MS gives its place up and its sockets are closed; a query to a server not kept has a socket
// of its own, closed once it is answered or times out. Open at once: at most KEPT_SERVERS x
// SOCKETS (512) sockets in rotation, plus one per query waiting on a socket out of rotation (a
// server not kept, or a socket being replaced), those at most MAX_LOOSE (the proxy itself holds
// no more than 4096 queries waiting).
import { createSocket, type Socket } from "node:dgram";
import { isIPv6 } from "node:net";
import { RandomIds, idOf, setId } from "./query-id.ts";

/** Servers whose sockets are kept between queries. */
const KEPT_SERVERS = 64;
/** Sockets per kept server. */
const SOCKETS = 8;
/** Queries a socket sends before it is replaced by one on a new random port. */
const USES = 256;
/** A kept socket unused for this long (up to twice as long) is closed. */
const IDLE_MS = 30_000;
/** Sockets out of rotation still awaited (servers not kept, sockets replaced), at most. */
const MAX_LOOSE = 4096;

interface Waiting {
  resolve(answer: Buffer): void;
  reject(err: Error): void;
  timer: NodeJS.Timeout;
  /** The client's id, put back into the answer. */
  id: number;
}

interface PooledSocket {
  socket: Socket;
  /** Its server's key in the pool. */
  key: string;
  /** Connected: a query is sent at once, without waiting on `ready`. */
  connected: boolean;
  /** By the id moat sent. */
  waiting: Map<number, Waiting>;
  uses: number;
  /** The pool's idle tick when it last sent a query. */
  usedAt: number;
  /** Out of rotation (a server not kept, or replaced): counted in `loose` until closed. */
  loose: boolean;
  closed: boolean;
  ready: Promise<void>;
}

export interface UpstreamPoolOptions {
  /** How long a kept socket may go unused before it is closed (default 30 s). */
  idleMs?: number;
}

export class UpstreamPool {
  /** Kept servers: SOCKETS slots each (a slot is empty until used, or after its socket went). */
  private readonly servers = new Map<string, (PooledSocket | undefined)[]>();
  /** Every socket not closed yet. */
  private readonly open = new Set<PooledSocket>();
  private loose = 0;
  private next = 0;
  private readonly ids = new RandomIds();
  private readonly idleMs: number;
  /** Counts idle periods: a socket unused for a whole one is closed at the next. */
  private ticks = 0;
  private sweeper: NodeJS.Timeout | null = null;

  constructor(options: UpstreamPoolOptions = {}) {
    this.idleMs = options.idleMs ?? IDLE_MS;
  }

  /** The server's answer to `query` (whose id is the client's), or a rejection (timeout, error). */
  ask(server: { ip: string; port: number }, query: Buffer, timeoutMs: number): Promise<Buffer> {
    try {
      const s = this.socketFor(server);
      // a connected socket sends in this turn: no promise turn per query
      if (s.connected) return this.send(s, query, timeoutMs);
      return s.ready.then(() => this.send(s, query, timeoutMs));
    } catch (err) {
      return Promise.reject(err as Error);
    }
  }

  private send(s: PooledSocket, query: Buffer, timeoutMs: number): Promise<Buffer> {
    let id = this.ids.next();
    while (s.waiting.has(id)) id = this.ids.next();
    const out = Buffer.from(query);
    setId(out, id);
    s.uses++;
    s.usedAt = this.ticks;
    return new Promise<Buffer>((resolve, reject) => {
      const timer = setTimeout(() => {
        s.waiting.delete(id);
        this.retireIfDone(s);
        reject(new Error(`no answer in ${timeoutMs} ms`));
      }, timeoutMs);
      s.waiting.set(id, { resolve, reject, timer, id: idOf(query) });
      // with a callback: dgram drops a send's own error (EPERM, ENOBUFS) without one
      s.socket.send(out, (err) => {
        if (err) this.settle(s, id, err);
      });
    });
  }

  /** Rejects every query still waiting and closes every socket. */
  close(): void {
    if (this.sweeper) clearInterval(this.sweeper);
    this.sweeper = null;
    this.servers.clear();
    for (const s of [...this.open]) this.fail(s, new Error("moat is stopping"));
  }

  private socketFor(server: { ip: string; port: number }): PooledSocket {
    const key = `${server.ip}|${server.port}`;
    let list = this.servers.get(key);
    if (!list) {
      if (this.servers.size >= KEPT_SERVERS) return this.loneSocket(server);
      this.servers.set(key, (list = []));
      this.startSweeping();
    }
    const i = this.next++ % SOCKETS;
    const current = list[i];
    if (current && current.uses < USES) return current;
    const fresh = this.openSocket(server);
    list[i] = fresh;
    // a worn socket leaves the rotation: it closes once its last answer came
    if (current) this.leaveRotation(current);
    return fresh;
  }

  /** A socket for one query to a server not kept; refused when too many are out already. */
  private loneSocket(server: { ip: string; port: number }): PooledSocket {
    if (this.loose >= MAX_LOOSE)
      throw new Error(`${MAX_LOOSE} queries already wait on servers moat keeps no socket for`);
    const s = this.openSocket(server);
    s.loose = true;
    this.loose++;
    return s;
  }

  private openSocket(server: { ip: string; port: number }): PooledSocket {
    const socket = createSocket(isIPv6(server.ip) ? "udp6" : "udp4");
    const pooled: PooledSocket = {
      socket,
      key: `${server.ip}|${server.port}`,
      connected: false,
      waiting: new Map(),
      uses: 0,
      usedAt: this.ticks,
      loose: false,
      closed: false,
      ready: new Promise((resolve, reject) => {
        socket.once("error", reject);
        // connected: only the server's datagrams arrive, and its ICMP refusal fails at once
        socket.connect(server.port, server.ip, () => {
          socket.off("error", reject);
          pooled.connected = true;
          resolve();
        });
      }),
    };
    this.open.add(pooled);
    pooled.ready.catch(() => this.drop(pooled));
    socket.on("message", (msg) => {
      if (msg.length >= 2) this.settle(pooled, idOf(msg), null, msg);
    });
    socket.on("error", (err) => {
      // a refusal (ICMP) or a send error: every query on this socket fails, the socket goes
      this.fail(pooled, err);
      this.drop(pooled);
    });
    return pooled;
  }

  private settle(s: PooledSocket, id: number, err: Error | null, answer?: Buffer): void {
    const w = s.waiting.get(id);
    if (!w) return; // an answer to no query of this socket (late, or forged): dropped
    s.waiting.delete(id);
    clearTimeout(w.timer);
    if (err || !answer) w.reject(err ?? new Error("no answer"));
    else {
      setId(answer, w.id);
      w.resolve(answer);
    }
    this.retireIfDone(s);
  }

  /** Takes a socket out of its slot: closed now if nothing waits on it, else once nothing does. */
  private leaveRotation(s: PooledSocket): void {
    if (!s.loose && !s.closed && s.waiting.size > 0) {
      s.loose = true;
      this.loose++;
    }
    this.retireIfDone(s);
  }

  /** Closes a socket out of the rotation once nothing waits on it. */
  private retireIfDone(s: PooledSocket): void {
    if (s.waiting.size > 0) return;
    const list = this.servers.get(s.key);
    if (list?.includes(s)) return;
    this.closeSocket(s);
  }

  private drop(s: PooledSocket): void {
    const list = this.servers.get(s.key);
    const i = list?.indexOf(s) ?? -1;
    if (list && i >= 0) list[i] = undefined;
    this.closeSocket(s);
  }

  private fail(s: PooledSocket, err: Error): void {
    for (const w of s.waiting.values()) {
      clearTimeout(w.timer);
      w.reject(err);
    }
    s.waiting.clear();
    this.closeSocket(s);
  }

  private closeSocket(s: PooledSocket): void {
    if (s.closed) return;
    s.closed = true;
    if (s.loose) this.loose--;
    this.open.delete(s);
    closeQuietly(s.socket);
  }

  private startSweeping(): void {
    if (this.sweeper) return;
    this.sweeper = setInterval(() => this.sweepIdle(), this.idleMs);
    this.sweeper.unref();
  }

  /** Closes the kept sockets unused for a whole idle period; a server left with none goes. */
  private sweepIdle(): void {
    this.ticks++;
    for (const [key, list] of this.servers) {
      for (let i = 0; i < list.length; i++) {
        const s = list[i];
        if (!s || s.usedAt >= this.ticks - 1) continue;
        list[i] = undefined;
        this.leaveRotation(s);
      }
      if (!list.some((s) => s !== undefined)) this.servers.delete(key);
    }
    if (this.servers.size === 0 && this.sweeper) {
      clearInterval(this.sweeper);
      this.sweeper = null;
    }
  }
}

function closeQuietly(socket: Socket): void {
  try {
    socket.close();
  } catch {
    // already closed
  }
}

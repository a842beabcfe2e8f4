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

/** How an exchange ends: an error, or the server's answer (under the client's id). */
export type Answered = (err: Error | null, answer?: Buffer) => void;

interface Waiting {
  done: Answered;
  /** The client's id, put back into the answer. */
  id: number;
  /** The socket it was sent on, and the id moat sent it under. */
  socket: PooledSocket;
  sentId: number;
  /** When it times out (performance.now()), in its queue of queries of the same timeout. */
  deadline: number;
  queue: DeadlineQueue;
  prev: Waiting | null;
  next: Waiting | null;
}

/**
 * The queries waiting with one timeout, oldest first (their deadlines in order), under one timer
 * set for the oldest: a query costs no timer of its own. A query answered leaves the queue at once.
 */
interface DeadlineQueue {
  timeoutMs: number;
  head: Waiting | null;
  tail: Waiting | null;
  timer: NodeJS.Timeout | null;
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
  /** The queries waiting, by their timeout. */
  private readonly deadlines = new Map<number, DeadlineQueue>();
  /** Counts idle periods: a socket unused for a whole one is closed at the next. */
  private ticks = 0;
  private sweeper: NodeJS.Timeout | null = null;

  constructor(options: UpstreamPoolOptions = {}) {
    this.idleMs = options.idleMs ?? IDLE_MS;
  }

  /** The server's answer to `query` (whose id is the client's), or a rejection (timeout, error). */
  ask(server: { ip: string; port: number }, query: Buffer, timeoutMs: number): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      this.exchange(server, query, timeoutMs, (err, answer) => {
        if (err || !answer) reject(err ?? new Error("no answer"));
        else resolve(answer);
      });
    });
  }

  /**
   * ask() without a promise (the proxy's path per query): `done` is called once, with the
   * answer or the error (a send that fails at once calls it before this returns).
   */
  exchange(
    server: { ip: string; port: number },
    query: Buffer,
    timeoutMs: number,
    done: Answered,
  ): void {
    let s: PooledSocket;
    try {
      s = this.socketFor(server);
    } catch (err) {
      done(err as Error);
      return;
    }
    // a connected socket sends in this turn
    if (s.connected) this.send(s, query, timeoutMs, done);
    else
      s.ready.then(
        () => this.send(s, query, timeoutMs, done),
        (err: unknown) => done(err as Error),
      );
  }

  private send(s: PooledSocket, query: Buffer, timeoutMs: number, done: Answered): void {
    let id = this.ids.next();
    while (s.waiting.has(id)) id = this.ids.next();
    const out = Buffer.from(query);
    setId(out, id);
    s.uses++;
    s.usedAt = this.ticks;
    const w: Waiting = {
      done,
      id: idOf(query),
      socket: s,
      sentId: id,
      deadline: 0,
      queue: this.queueOf(timeoutMs),
      prev: null,
      next: null,
    };
    s.waiting.set(id, w);
    this.enqueue(w);
    try {
      // with a callback: dgram drops a send's own error (EPERM, ENOBUFS) without one
      s.socket.send(out, (err) => {
        if (err) this.settle(s, id, err);
      });
    } catch (err) {
      // the socket closed meanwhile (moat stopping)
      this.settle(s, id, err as Error);
    }
  }

  /** The queue of queries waiting `timeoutMs` (one per timeout the caller uses; the proxy: one). */
  private queueOf(timeoutMs: number): DeadlineQueue {
    let q = this.deadlines.get(timeoutMs);
    if (!q) this.deadlines.set(timeoutMs, (q = { timeoutMs, head: null, tail: null, timer: null }));
    return q;
  }

  private enqueue(w: Waiting): void {
    const q = w.queue;
    w.deadline = performance.now() + q.timeoutMs;
    w.prev = q.tail;
    if (q.tail) q.tail.next = w;
    else q.head = w;
    q.tail = w;
    if (!q.timer) q.timer = setTimeout(() => this.expire(q), q.timeoutMs);
  }

  private dequeue(w: Waiting): void {
    const q = w.queue;
    if (w.prev) w.prev.next = w.next;
    else if (q.head === w) q.head = w.next;
    else return; // not queued
    if (w.next) w.next.prev = w.prev;
    else q.tail = w.prev;
    w.prev = w.next = null;
    if (!q.head && q.timer) {
      clearTimeout(q.timer);
      q.timer = null;
    }
  }

  /** Fails the queries whose time is up; the timer is set again for the oldest left. */
  private expire(q: DeadlineQueue): void {
    q.timer = null;
    const now = performance.now();
    for (let w = q.head; w && w.deadline <= now; w = q.head) {
      this.dequeue(w);
      w.socket.waiting.delete(w.sentId);
      this.retireIfDone(w.socket);
      w.done(new Error(`no answer in ${q.timeoutMs} ms`));
    }
    if (q.head && !q.timer)
      q.timer = setTimeout(() => this.expire(q), Math.max(1, Math.ceil(q.head.deadline - now)));
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
    this.dequeue(w);
    this.retireIfDone(s);
    if (err || !answer) w.done(err ?? new Error("no answer"));
    else {
      setId(answer, w.id);
      w.done(null, answer);
    }
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
    const waiting = [...s.waiting.values()];
    s.waiting.clear();
    for (const w of waiting) this.dequeue(w);
    this.closeSocket(s);
    for (const w of waiting) w.done(err);
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

// The DNS proxy's UDP sockets to the servers it asks, reused across queries: a socket per query
// (create, bind, connect, close) cost more than the rest of the proxy's own work. Each server has
// a few sockets, each bound to a port the kernel picks at random and connected to the server;
// every query goes out under a fresh random id (the client's id is put back in the answer), and a
// socket is replaced after a number of queries, so an off-path forger must still guess both the
// port and the id (RFC 5452) of an answer that would open firewall rules.
import { createSocket, type Socket } from "node:dgram";
import { isIPv6 } from "node:net";
import { RandomIds, idOf, setId } from "./query-id.ts";

/** Sockets per server. */
const SOCKETS = 8;
/** Queries a socket sends before it is replaced by one on a new random port. */
const USES = 256;

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
  ready: Promise<void>;
}

export class UpstreamPool {
  /** By server: SOCKETS slots (a slot is empty until used, or after its socket failed). */
  private readonly servers = new Map<string, (PooledSocket | undefined)[]>();
  private next = 0;
  private readonly ids = new RandomIds();

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
    for (const [key, list] of this.servers) {
      for (const s of list) if (s) this.fail(s, new Error("moat is stopping"));
      this.servers.delete(key);
    }
  }

  private socketFor(server: { ip: string; port: number }): PooledSocket {
    const key = `${server.ip}|${server.port}`;
    let list = this.servers.get(key);
    if (!list) this.servers.set(key, (list = []));
    const i = this.next++ % SOCKETS;
    const current = list[i];
    if (current && current.uses < USES) return current;
    const fresh = this.open(server);
    list[i] = fresh;
    // a worn socket leaves the rotation: it closes once its last answer came
    if (current) this.retireIfDone(current);
    return fresh;
  }

  private open(server: { ip: string; port: number }): PooledSocket {
    const socket = createSocket(isIPv6(server.ip) ? "udp6" : "udp4");
    const pooled: PooledSocket = {
      socket,
      key: `${server.ip}|${server.port}`,
      connected: false,
      waiting: new Map(),
      uses: 0,
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

  /** Closes a socket out of the rotation once nothing waits on it. */
  private retireIfDone(s: PooledSocket): void {
    if (s.waiting.size > 0) return;
    const list = this.servers.get(s.key);
    if (list?.includes(s)) return;
    closeQuietly(s.socket);
  }

  private drop(s: PooledSocket): void {
    const list = this.servers.get(s.key);
    const i = list?.indexOf(s) ?? -1;
    if (list && i >= 0) list[i] = undefined;
    closeQuietly(s.socket);
  }

  private fail(s: PooledSocket, err: Error): void {
    for (const w of s.waiting.values()) {
      clearTimeout(w.timer);
      w.reject(err);
    }
    s.waiting.clear();
    closeQuietly(s.socket);
  }
}

function closeQuietly(socket: Socket): void {
  try {
    socket.close();
  } catch {
    // already closed
  }
}

// Limits on a TCP listener's connections, so unauthenticated clients cannot exhaust the daemon's
// descriptors or lock out an authorised one: a cap on connections (when full, the oldest
// connection that has not authenticated yet is closed to make room; if every one has, the new one
// is), a cap on unauthenticated connections per client address (its oldest is closed), and a
// pre-authentication timeout (a connection that has not sent a request with a valid token by
// then is closed).
import type { Server, Socket } from "node:net";

export interface ConnectionLimits {
  maxConnections: number;
  maxPreAuthPerAddress: number;
  preAuthTimeoutMs: number;
}

export const CONNECTION_LIMITS: ConnectionLimits = {
  maxConnections: 256,
  maxPreAuthPerAddress: 32,
  preAuthTimeoutMs: 5000,
};

interface Tracked {
  socket: Socket;
  address: string;
  authenticated: boolean;
  timer: NodeJS.Timeout | null;
}

export interface ConnectionGuard {
  /** The connection of `socket` (the TCP or TLS socket of a request) sent a valid token. */
  authenticated(socket: Socket): void;
  /** Connections closed by the limits, since start. */
  readonly closed: number;
}

/** Keyed by the peer's address and port: the same for a TLS socket and its TCP socket. */
const key = (s: Socket) => `${s.remoteAddress}|${s.remotePort}`;

export function guardConnections(
  server: Server,
  limits: ConnectionLimits = CONNECTION_LIMITS,
): ConnectionGuard {
  // insertion order is age order: the first unauthenticated entry is the oldest
  const live = new Map<string, Tracked>();
  let closed = 0;
  const evict = (t: Tracked) => {
    closed++;
    forget(t);
    t.socket.destroy();
  };
  const forget = (t: Tracked) => {
    if (t.timer) clearTimeout(t.timer);
    t.timer = null;
    const k = key(t.socket);
    if (live.get(k) === t) live.delete(k);
  };
  const oldestUnauthenticated = (address?: string): Tracked | undefined => {
    for (const t of live.values())
      if (!t.authenticated && (address === undefined || t.address === address)) return t;
    return undefined;
  };
  server.on("connection", (socket: Socket) => {
    const address = socket.remoteAddress ?? "";
    if (live.size >= limits.maxConnections) {
      const victim = oldestUnauthenticated();
      if (!victim) {
        closed++;
        socket.destroy();
        return;
      }
      evict(victim);
    }
    let pending = 0;
    for (const t of live.values()) if (!t.authenticated && t.address === address) pending++;
    if (pending >= limits.maxPreAuthPerAddress) {
      const victim = oldestUnauthenticated(address);
      if (victim) evict(victim);
    }
    const t: Tracked = { socket, address, authenticated: false, timer: null };
    t.timer = setTimeout(() => evict(t), limits.preAuthTimeoutMs);
    t.timer.unref();
    live.set(key(socket), t);
    socket.once("close", () => forget(t));
  });
  return {
    authenticated(socket) {
      const t = live.get(key(socket));
      if (!t || t.authenticated) return;
      t.authenticated = true;
      if (t.timer) clearTimeout(t.timer);
      t.timer = null;
    },
    get closed() {
      return closed;
    },
  };
}

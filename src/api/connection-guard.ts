// Limits on a TCP listener's connections, so unauthenticated clients cannot exhaust the daemon's
// descriptors or lock out an authorised one: a cap on connections (when full, the oldest
// connection that has not authenticated yet is closed to make room; if every one has, the new one
// is), a cap on unauthenticated connections per client address (its oldest is closed), and a
// pre-authentication timeout (a connection that has not sent an authorised request by then is
// closed: a valid token refused for its scope or method does not count), and a cap on the
// authenticated connections of each principal (a token), so one token cannot take every
// connection and lock another out.
import type { Server, Socket } from "node:net";

export interface ConnectionLimits {
  maxConnections: number;
  maxPreAuthPerAddress: number;
  preAuthTimeoutMs: number;
  /** Authenticated connections one principal (a token, a console session) may hold. */
  maxPerPrincipal: number;
}

export const CONNECTION_LIMITS: ConnectionLimits = {
  maxConnections: 256,
  maxPreAuthPerAddress: 32,
  preAuthTimeoutMs: 5000,
  maxPerPrincipal: 64,
};

interface Tracked {
  socket: Socket;
  address: string;
  authenticated: boolean;
  principal: string | null;
  timer: NodeJS.Timeout | null;
}

export interface ConnectionGuard {
  /**
   * The connection of `socket` (the TCP or TLS socket of a request) sent a request `principal`
   * is authorised for; false when that principal already holds its share of connections.
   */
  authenticated(socket: Socket, principal: string): boolean;
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
  const perPrincipal = new Map<string, number>();
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
    if (live.get(k) !== t) return;
    live.delete(k);
    if (t.principal === null) return;
    const n = (perPrincipal.get(t.principal) ?? 1) - 1;
    if (n > 0) perPrincipal.set(t.principal, n);
    else perPrincipal.delete(t.principal);
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
    const t: Tracked = { socket, address, authenticated: false, principal: null, timer: null };
    t.timer = setTimeout(() => evict(t), limits.preAuthTimeoutMs);
    t.timer.unref();
    live.set(key(socket), t);
    socket.once("close", () => forget(t));
  });
  return {
    authenticated(socket, principal) {
      const t = live.get(key(socket));
      if (!t) return true;
      if (t.authenticated) return true;
      const n = perPrincipal.get(principal) ?? 0;
      if (n >= limits.maxPerPrincipal) return false;
      perPrincipal.set(principal, n + 1);
      t.principal = principal;
      t.authenticated = true;
      if (t.timer) clearTimeout(t.timer);
      t.timer = null;
      return true;
    },
    get closed() {
      return closed;
    },
  };
}

// The web console's sessions. `moat console` asks for a one-time login secret (carried in the
// URL fragment, so it never reaches a server log or a Referer); the browser trades it, once, for
// a session: an HttpOnly cookie naming the session and a session token (the CSRF token) that the
// page gets in the login answer's body, keeps in its sessionStorage and sends in a header with
// every API request. The token is never a cookie: a browser sends 127.0.0.1's cookies to every
// port of that host, so a cookie alone must authorise nothing. A session holds the scopes the
// secret was minted with, never more than the minter's own.
import { randomBytes, timingSafeEqual } from "node:crypto";
import { HttpError } from "./errors.ts";
import type { Scope } from "./scopes.ts";

/** How long each thing lives (docs/console.md "Getting in"). */
export const CONSOLE_LIFETIMES = {
  /** A login secret unused this long is gone. */
  loginMs: 2 * 60_000,
  /** A session ends this long after login, whatever happens. */
  sessionMs: 8 * 3600_000,
  /** A session not used for this long ends. */
  idleMs: 3600_000,
};

/**
 * Sessions and pending logins held at once for TCP callers (tokens), and for each owner (a
 * token; root on the unix socket is one owner, outside the TCP callers' total). A login past
 * a token's quota (429) or the total (503) is refused: one caller never ends another's. Past
 * root's quota its own oldest login or session goes.
 */
export const SESSION_LIMITS = { maxTotal: 64, maxPerOwner: 16 };

/** The owner of root's logins (every unix-socket caller). */
export const UNIX_OWNER = "unix";

export interface ConsoleSession {
  id: string;
  csrf: string;
  scopes: ReadonlySet<Scope>;
  /** Who minted the login, for the audit log ("unix uid 0 pid 42", "token ops"). */
  mintedBy: string;
  /** Whose quota it counts against (mint's `owner`). */
  owner: string;
  createdAt: number;
  expiresAt: number;
  lastUsed: number;
}

interface PendingLogin {
  scopes: ReadonlySet<Scope>;
  mintedBy: string;
  owner: string;
  expiresAt: number;
}

const secret = () => randomBytes(32).toString("base64url");

/** A connection a session's requests came on (a live view's stream, a WebSocket). */
export interface HeldConnection {
  destroy(): void;
  once(event: "close", listener: () => void): unknown;
}

/** How often ended sessions are looked for, to cut their open connections. */
const EXPIRY_CHECK_MS = 30_000;

export class ConsoleSessions {
  private readonly pending = new Map<string, PendingLogin>();
  private readonly sessions = new Map<string, ConsoleSession>();
  /** The connections each session's requests came on, cut when the session ends. */
  private readonly held = new Map<string, Set<HeldConnection>>();
  private readonly now: () => number;
  private readonly lifetimes: typeof CONSOLE_LIFETIMES;
  private readonly timer: NodeJS.Timeout;

  constructor(now: () => number = Date.now, lifetimes = CONSOLE_LIFETIMES) {
    this.now = now;
    this.lifetimes = lifetimes;
    this.timer = setInterval(() => this.expire(), EXPIRY_CHECK_MS);
    this.timer.unref();
  }

  /**
   * Ties `connection` to the session: it is cut when the session ends (logout, lifetime, idle),
   * so an open stream never outlives the session that opened it. While it is open the session is
   * in use (the live view open in a tab does not go idle), but never past its lifetime.
   */
  hold(id: string, connection: HeldConnection): void {
    let set = this.held.get(id);
    if (!set) this.held.set(id, (set = new Set()));
    if (set.has(connection)) return;
    set.add(connection);
    connection.once("close", () => set.delete(connection));
  }

  /** Ends the sessions whose time is up and cuts their connections (a timer calls it too). */
  expire(): void {
    this.sweep();
  }

  close(): void {
    clearInterval(this.timer);
  }

  /**
   * A one-time login secret for `scopes`, valid for lifetimes.loginMs, counted against `owner`
   * (UNIX_OWNER for root; else the token). 503 when TCP callers hold every slot.
   */
  mint(
    scopes: ReadonlySet<Scope>,
    mintedBy: string,
    owner: string = mintedBy,
  ): { secret: string; expiresAt: number } {
    this.sweep();
    let mine = 0;
    let tcp = 0;
    for (const x of [...this.pending.values(), ...this.sessions.values()]) {
      if (x.owner === owner) mine++;
      if (x.owner !== UNIX_OWNER) tcp++;
    }
    // root is never refused: its own oldest goes instead
    if (mine >= SESSION_LIMITS.maxPerOwner && owner === UNIX_OWNER) this.dropOldest(owner);
    else if (mine >= SESSION_LIMITS.maxPerOwner)
      throw new HttpError(
        429,
        "ECONSOLE",
        `${owner} holds as many console sessions and login links as one caller may (${SESSION_LIMITS.maxPerOwner}); log out of some or let them expire`,
      );
    else if (owner !== UNIX_OWNER && tcp >= SESSION_LIMITS.maxTotal)
      throw new HttpError(
        503,
        "ECONSOLE",
        "too many console sessions and login links are held; try again once some end",
      );
    const s = secret();
    const expiresAt = this.now() + this.lifetimes.loginMs;
    this.pending.set(s, { scopes, mintedBy, owner, expiresAt });
    return { secret: s, expiresAt };
  }

  /** Makes room in root's quota: its oldest unused login, else its oldest session. */
  private dropOldest(owner: string): void {
    // a Map iterates in insertion order: the first match is the oldest
    for (const [k, p] of this.pending)
      if (p.owner === owner) {
        this.pending.delete(k);
        return;
      }
    for (const [k, s] of this.sessions)
      if (s.owner === owner) {
        this.end(k);
        return;
      }
  }

  /** The secret's session, or null if it is unknown, used or expired (a secret works once). */
  exchange(loginSecret: string): ConsoleSession | null {
    this.sweep();
    const login = this.pending.get(loginSecret);
    if (!login) return null;
    this.pending.delete(loginSecret);
    const now = this.now();
    const session: ConsoleSession = {
      id: secret(),
      csrf: secret(),
      scopes: login.scopes,
      mintedBy: login.mintedBy,
      owner: login.owner,
      createdAt: now,
      expiresAt: now + this.lifetimes.sessionMs,
      lastUsed: now,
    };
    this.sessions.set(session.id, session);
    return session;
  }

  /** The live session the cookie names (its idle clock restarts), else null. */
  lookup(id: string): ConsoleSession | null {
    const s = this.peek(id);
    if (s) s.lastUsed = this.now();
    return s;
  }

  /**
   * The live session the cookie names, else null, without using it: the cookie alone may come
   * from a page on another port of the host, which must not keep the session from idling.
   */
  peek(id: string): ConsoleSession | null {
    const s = this.sessions.get(id);
    if (!s) return null;
    if (this.over(s, this.now())) {
      this.end(id);
      return null;
    }
    return s;
  }

  /** A request carried the session's token: the session is in use, `connection` tied to it. */
  used(session: ConsoleSession, connection: HeldConnection): void {
    session.lastUsed = this.now();
    this.hold(session.id, connection);
  }

  /**
   * Ends the session (logout, expiry) and cuts the connections it holds, but `answering` (the
   * logout request's own, which still has its answer to send).
   */
  end(id: string, answering?: HeldConnection): void {
    this.sessions.delete(id);
    const set = this.held.get(id);
    this.held.delete(id);
    for (const c of set ?? []) if (c !== answering) c.destroy();
  }

  private over(s: ConsoleSession, now: number): boolean {
    if (now >= s.expiresAt) return true;
    if ((this.held.get(s.id)?.size ?? 0) > 0) s.lastUsed = now; // a stream is open: in use
    return now - s.lastUsed >= this.lifetimes.idleMs;
  }

  private sweep(): void {
    const now = this.now();
    for (const [k, p] of this.pending) if (now >= p.expiresAt) this.pending.delete(k);
    for (const [k, s] of this.sessions) if (this.over(s, now)) this.end(k);
    // connections of sessions ended meanwhile are cut too
    for (const k of this.held.keys()) if (!this.sessions.has(k)) this.end(k);
  }
}

/** The x-moat-csrf header's value is the session's token (constant time). */
export function csrfMatches(
  session: ConsoleSession,
  header: string | string[] | undefined,
): boolean {
  if (typeof header !== "string") return false;
  const a = Buffer.from(header);
  const b = Buffer.from(session.csrf);
  return a.length === b.length && timingSafeEqual(a, b);
}

export const SESSION_COOKIE = "moat_console";
export const CSRF_HEADER = "x-moat-csrf";

/**
 * The values of cookie `name` in a Cookie header, in the header's order. There may be several:
 * a page on another port of the host can set one of the same name with a longer path, which the
 * browser then sends first.
 */
export function cookieValues(header: string | undefined, name: string): string[] {
  const values: string[] = [];
  for (const part of (header ?? "").split(";")) {
    const eq = part.indexOf("=");
    if (eq > 0 && part.slice(0, eq).trim() === name) values.push(part.slice(eq + 1).trim());
  }
  return values;
}

/**
 * The Set-Cookie value for a new session: its id, HttpOnly. The session's token is not a cookie
 * (the login answer's body carries it), so the cookie a browser sends to any port is not enough.
 */
export function sessionCookie(session: ConsoleSession, secure: boolean): string {
  const maxAge = Math.floor((session.expiresAt - session.createdAt) / 1000);
  return `${SESSION_COOKIE}=${session.id}; HttpOnly; Path=/; SameSite=Strict; Max-Age=${maxAge}${secure ? "; Secure" : ""}`;
}

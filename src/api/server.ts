// The API server: HTTP/1.1 on a root-only unix socket (no token: only root can connect) and
// optionally on TCP (bearer token on every request but /openapi.json; TLS with cert and key).
// Live events: SSE on GET /v1/events/stream, or a WebSocket upgrade of the same path. The web
// console (/console/) authenticates by a session cookie instead (console-*.ts), on a loopback
// listener opened when `moat console` first asks, or on a TLS listener.
import type * as Http from "node:http";
import type { IncomingMessage, ServerResponse } from "node:http";
import { createServer as createHttps } from "node:https";
import { rmSync } from "node:fs";
import { createRequire } from "node:module";
import type { Server } from "node:net";
import type { Duplex } from "node:stream";
import { API_TLS_CERT, API_TLS_KEY, readTrustedFile, UnsafeFileError } from "../host/index.ts";
import { authenticate, readTokenFile, ApiConfigError, type Token } from "./auth.ts";
import { checkHost, consolePrincipal, isPageRequest, type CookieListener } from "./console-auth.ts";
import { serveConsole } from "./console-routes.ts";
import { ConsoleSessions, UNIX_OWNER } from "./console-sessions.ts";
import { FlowHub } from "./flow-stream.ts";
import type { ApiControl } from "./control.ts";
import { CONNECTION_LIMITS, guardConnections, type ConnectionGuard } from "./connection-guard.ts";
import { HttpError, sendError } from "./errors.ts";
import { formatListen, listen, parseListen, type ListenSpec } from "./listen.ts";
import type { ApiCounters } from "./metrics.ts";
import { describePrincipal, unixPrincipal, type Principal } from "./principal.ts";
import type { Scope } from "./scopes.ts";
import { filterOf, ROUTES, type Route } from "./routes.ts";
import { SUBSCRIBER_LIMITS, SubscriberHub } from "./subscribers.ts";
import { acceptWebSocket } from "./websocket.ts";

// required, not imported: an ES import of node:http loads Node's fetch (undici) for its module
// facade at every daemon start (src/l7/http/node-http.ts)
const http = createRequire(import.meta.url)("node:http") as typeof Http;
const { createServer: createHttp, STATUS_CODES } = http;

/**
 * The live subscribers' sink: events it may hold (past that they are dropped, counted) and
 * events per batch (a slow subscriber holds at most its byte bound plus one batch).
 */
const HUB_QUEUE = { capacity: 16_384, maxBatch: 512 };

/**
 * How long a request may take to arrive: its headers, and the whole request with its body (a
 * body trickled in holds a connection and a slot of the body budget; past this it is cut, 408).
 */
export const REQUEST_LIMITS = { headersTimeoutMs: 10_000, requestTimeoutMs: 30_000 };

export interface ListenerOptions {
  /** "unix:/PATH" or "HOST:PORT". */
  listen: string;
  /** Required for TCP. */
  tokenFile?: string;
  tls?: { cert: string; key: string };
}

export interface ApiServer {
  /** Where each listener is bound (TCP port 0 resolved). */
  readonly addresses: string[];
  readonly counters: ApiCounters;
  close(): Promise<void>;
}

export async function startApi(
  control: ApiControl,
  listeners: ListenerOptions[],
): Promise<ApiServer> {
  const counters: ApiCounters = { requests: 0, unauthorized: 0 };
  const servers: { server: Server; spec: ListenSpec }[] = [];
  const addresses: string[] = [];
  const hub = new SubscriberHub(SUBSCRIBER_LIMITS, () => control.addSink(hub, HUB_QUEUE));
  const flows = new FlowHub(() => control.addSink(flows, HUB_QUEUE));
  let loopback: Promise<number> | null = null;
  const shared: Shared = {
    control,
    counters,
    hub,
    flows,
    sessions: new ConsoleSessions(),
    refusals: new Refusals((line) => control.audit(line)),
    // the loopback console listener: opened on the first `moat console`, then reused; a
    // failure (another local user holding every free port) is not kept: the next one tries again
    consolePort: () =>
      (loopback ??= (async () => {
        const spec: ListenSpec = { kind: "tcp", host: "127.0.0.1", port: 0 };
        const server = createListener(spec, { listen: "127.0.0.1:0" }, shared, true);
        const bound = await listen(server, spec);
        servers.push({ server, spec: bound });
        if (bound.kind === "tcp") consoleListeners.get(server)!.loopbackPort = bound.port;
        control.log(`api: web console listener on ${formatListen(bound)}`);
        return bound.kind === "tcp" ? bound.port : 0;
      })().catch((err: unknown) => {
        loopback = null;
        throw new HttpError(
          503,
          "ECONSOLE",
          `the console listener could not be opened on 127.0.0.1 (${err instanceof Error ? err.message : String(err)}); try again`,
        );
      })),
  };
  const close = async () => {
    await closeAll(servers);
    if (hub.registered) await control.removeSink(hub);
    hub.close();
    if (flows.registered) await control.removeSink(flows);
    flows.close();
    shared.sessions.close();
    shared.refusals.close();
  };
  try {
    for (const options of listeners) {
      const spec = parseListen(options.listen);
      const server = createListener(spec, options, shared);
      const bound = await listen(server, spec);
      servers.push({ server, spec: bound });
      addresses.push(formatListen(bound));
    }
  } catch (err) {
    await close();
    throw err;
  }
  return { addresses, counters, close };
}

/** The TLS files as trusted-file.ts reads them (the key as a secret, like the token file). */
function readTls(tls: { cert: string; key: string }): { cert: string; key: string } {
  try {
    return {
      cert: readTrustedFile(tls.cert, API_TLS_CERT),
      key: readTrustedFile(tls.key, API_TLS_KEY),
    };
  } catch (err) {
    if (err instanceof UnsafeFileError) throw new ApiConfigError(err.message);
    throw err;
  }
}

/** How often repeated refusals of one route by one caller are audited: once, then a count. */
export const AUDIT_LIMITS = { refusalIntervalMs: 10_000 };

/**
 * Refusals for the audit log, coalesced: the first of a (caller, route) in an interval is
 * written; the repeats are counted and written as one line when the interval ends, so a
 * caller looping on a refused request cannot flood the log.
 */
class Refusals {
  private readonly held = new Map<string, { count: number; more: (n: number) => string }>();
  private readonly write: (line: string) => void;
  private readonly timers = new Set<NodeJS.Timeout>();
  constructor(write: (line: string) => void) {
    this.write = write;
  }

  audit(key: string, line: string, more: (n: number) => string): void {
    const seen = this.held.get(key);
    if (seen) {
      seen.count++;
      return;
    }
    this.write(line);
    this.held.set(key, { count: 0, more });
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      this.flush(key);
    }, AUDIT_LIMITS.refusalIntervalMs);
    timer.unref();
    this.timers.add(timer);
  }

  private flush(key: string): void {
    const seen = this.held.get(key);
    this.held.delete(key);
    if (seen && seen.count > 0) this.write(seen.more(seen.count));
  }

  /** Writes the counts still held. */
  close(): void {
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    for (const key of [...this.held.keys()]) this.flush(key);
  }
}

/** What every listener of one API shares. */
interface Shared {
  control: ApiControl;
  counters: ApiCounters;
  hub: SubscriberHub;
  flows: FlowHub;
  sessions: ConsoleSessions;
  refusals: Refusals;
  /** The loopback console listener's port (opened on first use). */
  consolePort(): Promise<number>;
}

/** Listeners by server, for the console listener's port once bound. */
const consoleListeners = new WeakMap<Server, Listener>();

const isLoopback = (host: string) =>
  host === "localhost" || host === "::1" || host.startsWith("127.");

function createListener(
  spec: ListenSpec,
  options: ListenerOptions,
  shared: Shared,
  consoleOnly = false,
): Server {
  const { control, counters } = shared;
  let tokens: Token[] | null = null;
  if (consoleOnly) tokens = [];
  else if (spec.kind === "tcp") {
    if (!options.tokenFile)
      throw new ApiConfigError(`API listener ${options.listen} is TCP and needs a token file`);
    tokens = readTokenFile(options.tokenFile);
    for (const t of tokens.filter((k) => !k.scoped))
      control.log(
        `warning: API token '${t.name}' in ${options.tokenFile} names no scopes and has all of them; write "NAME SCOPES TOKEN" to limit it (docs/api.md)`,
      );
  }
  const tls = spec.kind === "tcp" && options.tls !== undefined;
  const listener: Listener = {
    tokens,
    guard: null,
    // a session cookie only where it cannot be read off the wire
    cookies: spec.kind === "tcp" && (tls || isLoopback(spec.host)),
    secure: tls,
    loopbackPort: null,
  };
  const handle = (req: IncomingMessage, res: ServerResponse) =>
    void dispatch(req, res, listener, shared);
  const timeouts = {
    requestTimeout: REQUEST_LIMITS.requestTimeoutMs,
    headersTimeout: Math.min(REQUEST_LIMITS.headersTimeoutMs, REQUEST_LIMITS.requestTimeoutMs),
    connectionsCheckingInterval: Math.min(1000, REQUEST_LIMITS.requestTimeoutMs),
  };
  const server =
    spec.kind === "tcp" && options.tls
      ? createHttps({ ...readTls(options.tls), ...timeouts }, handle)
      : createHttp(timeouts, handle);
  if (spec.kind === "tcp") listener.guard = guardConnections(server);
  consoleListeners.set(server, listener);
  const upgraded = new Set<Duplex>();
  upgradedSockets.set(server, upgraded);
  server.on("upgrade", (req: IncomingMessage, socket: Duplex) => {
    counters.requests++;
    // Node stops listening for an upgraded socket's errors: a client gone before moat's answer
    // (a reset) would end the process with an uncaught error
    socket.on("error", () => socket.destroy());
    upgraded.add(socket);
    socket.once("close", () => upgraded.delete(socket));
    try {
      const url = new URL(req.url ?? "/", "http://moat");
      checkHost(req, listener);
      authorize(listener, req, url, shared);
      if (
        url.pathname !== "/v1/events/stream" ||
        req.headers.upgrade?.toLowerCase() !== "websocket"
      )
        throw new HttpError(404, "ENOTFOUND", `no WebSocket endpoint ${url.pathname}`);
      acceptWebSocket(req, socket, filterOf(url.searchParams), shared.hub);
    } catch (err) {
      const status = err instanceof HttpError ? err.status : 500;
      const body = `${err instanceof HttpError ? err.message : "internal error"}\n`;
      socket.end(
        `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ""}\r\nconnection: close\r\n` +
          `content-type: text/plain\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
      );
    }
  });
  return server;
}

/**
 * A listener's tokens (null: the unix socket; empty: the console listener, cookies only) and,
 * on TCP, its connection limits.
 */
interface Listener extends CookieListener {
  tokens: Token[] | null;
  guard: ConnectionGuard | null;
}

/** WebSocket connections: the HTTP server no longer tracks them once upgraded. */
const upgradedSockets = new WeakMap<Server, Set<Duplex>>();

/**
 * The route and who may take it: 401 (counted) on a TCP listener without a valid token, 404 or
 * 405 for no such endpoint, 403 when the token lacks the route's scope (audited for a change).
 */
function authorize(
  listener: Listener,
  req: IncomingMessage,
  url: URL,
  shared: Shared,
): { route: Route; who: string; principal: Principal | null } {
  const methods = ROUTES[url.pathname];
  const route = methods?.[req.method ?? "GET"];
  if (route?.scope === null) return { route, who: "anonymous", principal: null };
  const principal = identify(listener, req, shared);
  if (!methods) throw new HttpError(404, "ENOTFOUND", `no endpoint ${url.pathname}`);
  if (!route)
    throw new HttpError(405, "EMETHOD", `${req.method} is not allowed on ${url.pathname}`);
  const who = describePrincipal(principal);
  if (!principal.scopes.has(route.scope)) {
    if (route.change)
      shared.refusals.audit(
        `${who}|${req.method} ${url.pathname}`,
        `API REFUSED ${req.method} ${url.pathname} by ${who}: lacks scope '${route.scope}'`,
        (n) => `API REFUSED ${n} more refusals of ${req.method} ${url.pathname} by ${who}`,
      );
    throw new HttpError(
      403,
      "EFORBIDDEN",
      `${principal.kind === "token" ? `token '${principal.name}'` : who} lacks the scope '${route.scope}' this endpoint needs`,
    );
  }
  admit(listener, req, who);
  return { route, who, principal };
}

/**
 * Marks the connection authenticated (past the pre-authentication limits) once a request on it
 * is authorised; 429 when `who` already holds its share of the listener's connections.
 */
function admit(listener: Listener, req: IncomingMessage, who: string): void {
  if (!listener.guard || listener.guard.authenticated(req.socket, who)) return;
  throw new HttpError(
    429,
    ECONNECTIONS,
    `${who} holds as many connections as one caller may (${CONNECTION_LIMITS.maxPerPrincipal}); close some first`,
  );
}

/** The code of admit()'s refusal: its connection is closed after the answer. */
const ECONNECTIONS = "ECONNECTIONS";

function identify(listener: Listener, req: IncomingMessage, shared: Shared): Principal {
  if (!listener.tokens) return unixPrincipal(req.socket);
  const token = req.headers.authorization
    ? authenticate(listener.tokens, req.headers.authorization)
    : null;
  if (token === null) {
    const viaCookie = consolePrincipal(shared.sessions, req, listener);
    if (viaCookie) return viaCookie;
    shared.counters.unauthorized++;
    throw new HttpError(
      401,
      "EUNAUTHORIZED",
      listener.tokens.length
        ? "a valid bearer token is required"
        : "no console session: run 'moat console' for a login link",
    );
  }
  return { kind: "token", name: token.name, scopes: token.scopes };
}

async function dispatch(
  req: IncomingMessage,
  res: ServerResponse,
  listener: Listener,
  shared: Shared,
): Promise<void> {
  const { control, counters, hub, flows } = shared;
  counters.requests++;
  try {
    const url = new URL(req.url ?? "/", "http://moat");
    checkHost(req, listener);
    if (url.pathname === "/console") {
      res.writeHead(302, { location: "/console/" }).end();
      return;
    }
    if (url.pathname.startsWith("/console/")) {
      await serveConsole({
        req,
        res,
        url,
        listener,
        sessions: shared.sessions,
        identify: () => {
          const principal = identify(listener, req, shared);
          // a page loaded with the cookie alone may come from another port's page: its
          // connection stays unauthenticated and takes none of the session's share
          if (principal.kind !== "console" || !isPageRequest(req))
            admit(listener, req, describePrincipal(principal));
          return principal;
        },
        log: control.log,
      });
      return;
    }
    const { route, who, principal } = authorize(listener, req, url, shared);
    const mintConsole = (scopes: ReadonlySet<Scope>) => mint(scopes, req, listener, shared, who);
    await route.handle({
      req,
      res,
      url,
      who,
      control,
      counters,
      subscribers: hub,
      flows,
      principal: principal ?? { kind: "token", name: "anonymous", scopes: new Set() },
      mintConsole,
    });
  } catch (err) {
    if (err instanceof HttpError && err.code === ECONNECTIONS) res.setHeader("connection", "close");
    sendError(res, err, control.log);
  }
}

/** A login URL: on the loopback console listener for a unix-socket caller, else on this one. */
async function mint(
  scopes: ReadonlySet<Scope>,
  req: IncomingMessage,
  listener: Listener,
  shared: Shared,
  who: string,
): Promise<{ url: string; expiresAt: number }> {
  let origin: string;
  if (listener.tokens === null) origin = `http://127.0.0.1:${await shared.consolePort()}`;
  else if (listener.cookies)
    origin = `${listener.secure ? "https" : "http"}://${req.headers.host ?? ""}`;
  else
    throw new HttpError(
      400,
      "ECONSOLE",
      "this listener is plain TCP off loopback: a console session needs the TLS listener",
    );
  const owner = listener.tokens === null ? UNIX_OWNER : who;
  const { secret, expiresAt } = shared.sessions.mint(scopes, who, owner);
  shared.control.log(`api: console login minted by ${who} (scopes ${[...scopes].join(",")})`);
  // the secret rides in the fragment: browsers send it to no server, in no Referer
  return { url: `${origin}/console/login#${secret}`, expiresAt };
}

async function closeAll(servers: { server: Server; spec: ListenSpec }[]): Promise<void> {
  for (const { server, spec } of servers) {
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      // SSE and WebSocket subscribers hold connections open; end them
      (server as Server & { closeAllConnections?: () => void }).closeAllConnections?.();
      for (const socket of upgradedSockets.get(server) ?? []) socket.destroy();
    });
    if (spec.kind === "unix") rmSync(spec.path, { force: true });
  }
}

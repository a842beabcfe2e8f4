// The API server: HTTP/1.1 on a root-only unix socket (no token: only root can connect) and
// optionally on TCP (bearer token on every request but /openapi.json; TLS with cert and key).
// Live events: SSE on GET /v1/events/stream, or a WebSocket upgrade of the same path.
import {
  createServer as createHttp,
  STATUS_CODES,
  type IncomingMessage,
  type ServerResponse,
} from "node:http";
import { createServer as createHttps } from "node:https";
import { readFileSync, rmSync } from "node:fs";
import type { Server } from "node:net";
import type { Duplex } from "node:stream";
import { authenticate, readTokenFile, ApiConfigError, type Token } from "./auth.ts";
import type { ApiControl } from "./control.ts";
import { guardConnections, type ConnectionGuard } from "./connection-guard.ts";
import { HttpError, sendError } from "./errors.ts";
import { formatListen, listen, parseListen, type ListenSpec } from "./listen.ts";
import type { ApiCounters } from "./metrics.ts";
import { describePrincipal, unixPrincipal, type Principal } from "./principal.ts";
import { filterOf, ROUTES, type Route } from "./routes.ts";
import { SUBSCRIBER_LIMITS, SubscriberHub } from "./subscribers.ts";
import { acceptWebSocket } from "./websocket.ts";

/**
 * The live subscribers' sink: events it may hold (past that they are dropped, counted) and
 * events per batch (a slow subscriber holds at most its byte bound plus one batch).
 */
const HUB_QUEUE = { capacity: 16_384, maxBatch: 512 };

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
  const close = async () => {
    await closeAll(servers);
    if (hub.registered) await control.removeSink(hub);
    hub.close();
  };
  try {
    for (const options of listeners) {
      const spec = parseListen(options.listen);
      const server = createListener(spec, options, { control, counters, hub });
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

/** What every listener of one API shares. */
interface Shared {
  control: ApiControl;
  counters: ApiCounters;
  hub: SubscriberHub;
}

function createListener(spec: ListenSpec, options: ListenerOptions, shared: Shared): Server {
  const { control, counters } = shared;
  let tokens: Token[] | null = null;
  if (spec.kind === "tcp") {
    if (!options.tokenFile)
      throw new ApiConfigError(`API listener ${options.listen} is TCP and needs a token file`);
    tokens = readTokenFile(options.tokenFile);
    for (const t of tokens.filter((k) => !k.scoped))
      control.log(
        `warning: API token '${t.name}' in ${options.tokenFile} names no scopes and has all of them; write "NAME SCOPES TOKEN" to limit it (docs/api.md)`,
      );
  }
  const listener: Listener = { tokens, guard: null };
  const handle = (req: IncomingMessage, res: ServerResponse) =>
    void dispatch(req, res, listener, shared);
  const server =
    spec.kind === "tcp" && options.tls
      ? createHttps(
          { cert: readFileSync(options.tls.cert), key: readFileSync(options.tls.key) },
          handle,
        )
      : createHttp(handle);
  if (spec.kind === "tcp") listener.guard = guardConnections(server);
  const upgraded = new Set<Duplex>();
  upgradedSockets.set(server, upgraded);
  server.on("upgrade", (req: IncomingMessage, socket: Duplex) => {
    counters.requests++;
    upgraded.add(socket);
    socket.once("close", () => upgraded.delete(socket));
    try {
      const url = new URL(req.url ?? "/", "http://moat");
      authorize(listener, req, url, counters, control);
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

/** A listener's tokens (null: the unix socket) and, on TCP, its connection limits. */
interface Listener {
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
  counters: ApiCounters,
  control: ApiControl,
): { route: Route; who: string } {
  const methods = ROUTES[url.pathname];
  const route = methods?.[req.method ?? "GET"];
  if (route?.scope === null) return { route, who: "anonymous" };
  const principal = identify(listener, req, counters);
  if (!methods) throw new HttpError(404, "ENOTFOUND", `no endpoint ${url.pathname}`);
  if (!route)
    throw new HttpError(405, "EMETHOD", `${req.method} is not allowed on ${url.pathname}`);
  const who = describePrincipal(principal);
  if (!principal.scopes.has(route.scope)) {
    if (route.change)
      control.audit(
        `API REFUSED ${req.method} ${url.pathname} by ${who}: lacks scope '${route.scope}'`,
      );
    throw new HttpError(
      403,
      "EFORBIDDEN",
      `${principal.kind === "token" ? `token '${principal.name}'` : who} lacks the scope '${route.scope}' this endpoint needs`,
    );
  }
  return { route, who };
}

function identify(listener: Listener, req: IncomingMessage, counters: ApiCounters): Principal {
  if (!listener.tokens) return unixPrincipal(req.socket);
  const token = authenticate(listener.tokens, req.headers.authorization);
  if (token === null) {
    counters.unauthorized++;
    throw new HttpError(401, "EUNAUTHORIZED", "a valid bearer token is required");
  }
  listener.guard?.authenticated(req.socket);
  return { kind: "token", name: token.name, scopes: token.scopes };
}

async function dispatch(
  req: IncomingMessage,
  res: ServerResponse,
  listener: Listener,
  { control, counters, hub }: Shared,
): Promise<void> {
  counters.requests++;
  try {
    const url = new URL(req.url ?? "/", "http://moat");
    const { route, who } = authorize(listener, req, url, counters, control);
    await route.handle({ req, res, url, who, control, counters, subscribers: hub });
  } catch (err) {
    sendError(res, err, control.log);
  }
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

// HTTP/1.x: Node's own parser reads the client's requests (an http.Server that never listens is
// handed the socket); each request is judged, then refused with 403 or re-sent upstream by Node's
// client, bodies streamed both ways. Requests the parser refuses never reach the server.
import type { ClientRequest, IncomingMessage, ServerResponse } from "node:http";
import type { Socket } from "node:net";
import type { Duplex } from "node:stream";
import type { L7Context } from "../types.ts";
import { expectationsForServer } from "./expect.ts";
import { endToEnd } from "./headers.ts";
import { passable, passInformation1 } from "./informational.ts";
import { headersClock, MAX_ANSWER_HEADER_BYTES, type HttpLimits } from "./limits.ts";
import { blockedBody, parseErrorResponse, TIMEOUT_RESPONSE, upstreamFailure } from "./refusals.ts";
import { destinationAuthority, reportFacts, requestFacts } from "./request-facts.ts";
import { tunnel } from "./tunnel.ts";
import { UpstreamAgent } from "./upstream-agent.ts";
import { http } from "./node-http.ts";

const { createServer, request, validateHeaderName, validateHeaderValue } = http;

/** Several Host lines make servers disagree about the host (RFC 9112, 3.2): refused. */
const hostLines = (req: IncomingMessage): number =>
  req.rawHeaders.filter((h, i) => i % 2 === 0 && h.toLowerCase() === "host").length;

/** A response head moat can write to the client as the server sent it. */
interface PassableHead {
  status: number;
  reason: string;
  headers: Record<string, string | string[]>;
}

/** Characters Node's writeHead refuses in a reason or a header value (it throws on them). */
const INVALID_FIELD_CHAR = /[^\t\x20-\x7e\x80-\xff]/;

/**
 * The server's answer as a head writeHead accepts, or null: Node's client reads statuses and
 * reasons (`099`, a byte 0x7f) that writeHead throws on, and a throw in an event handler would
 * end the daemon.
 */
function passableHead(answer: IncomingMessage): PassableHead | null {
  const status = answer.statusCode ?? 0;
  const reason = answer.statusMessage ?? "";
  if (!Number.isInteger(status) || status < 100 || status > 999) return null;
  if (INVALID_FIELD_CHAR.test(reason)) return null;
  const headers = endToEnd(answer.headers);
  try {
    for (const [name, value] of Object.entries(headers)) {
      validateHeaderName(name);
      for (const v of Array.isArray(value) ? value : [value]) validateHeaderValue(name, v);
    }
  } catch {
    return null;
  }
  return { status, reason, headers };
}

/**
 * Writes the server's head to the client; false when Node refuses it (writeHead throws on what it
 * cannot frame for this client, and a throw in an event handler would end the daemon).
 */
function headWritten(res: ServerResponse, head: PassableHead): boolean {
  try {
    res.writeHead(head.status, head.reason, head.headers);
    return true;
  } catch {
    return false;
  }
}

/**
 * An answer the server ends before its framing does (a FIN inside a Content-Length or before the
 * last chunk) ends the client's connection at once, as the server's would have: the client sees
 * a short body, never a complete one moat made up, and waits for nothing more.
 */
function cutShort(answer: IncomingMessage, res: ServerResponse, up: ClientRequest): void {
  answer.on("error", () => {});
  answer.on("close", () => {
    if (answer.complete) return;
    up.destroy();
    res.destroy();
  });
}

const hasBody = (req: IncomingMessage): boolean =>
  req.headers["transfer-encoding"] !== undefined || Number(req.headers["content-length"] ?? 0) > 0;

function exchange(ctx: L7Context, agent: UpstreamAgent, req: IncomingMessage, res: ServerResponse) {
  if (hostLines(req) > 1) {
    res.writeHead(400, { "content-type": "text/plain; charset=utf-8", connection: "close" });
    res.end("moat: more than one Host header\n");
    return;
  }
  const { facts, target, authority, malformed } = requestFacts(req);
  if (malformed) {
    // not a policy decision: logged, not reported (docs/l7-http.md, "Malformed and slow requests")
    ctx.log(`http: refused a malformed request (${malformed})`);
    res.writeHead(400, { "content-type": "text/plain; charset=utf-8", connection: "close" });
    res.end("moat: malformed request\n");
    return;
  }
  const decision = ctx.judge({ http: facts });
  if (!decision.forward) {
    // a refused body is not read: the connection closes after the 403
    const close = hasBody(req) ? { connection: "close" } : {};
    res.writeHead(403, { "content-type": "text/plain; charset=utf-8", ...close });
    res.end(blockedBody(decision.rule));
    ctx.report(decision, reportFacts(facts, 403));
    return;
  }
  const headers = endToEnd(req.headers);
  // the server serves the host moat judged: the target's authority, not another Host
  if (authority !== undefined) headers.host = authority;
  // HTTP/1.0 needs no Host, HTTP/1.1 (what moat sends) does: the address the client connected to
  else headers.host ??= destinationAuthority(ctx.original, 80);
  // expectations, 100-continue too, are the server's to meet or refuse, as they would be directly
  const expect = expectationsForServer(req.headers.expect, req.httpVersion);
  if (expect !== undefined) headers.expect = expect;
  if (req.headers["transfer-encoding"] !== undefined) headers["transfer-encoding"] = "chunked";
  const up = request({
    agent,
    method: req.method,
    path: target,
    headers,
    setHost: false,
    maxHeaderSize: MAX_ANSWER_HEADER_BYTES,
  });
  const badGateway = (body: string) => {
    res.writeHead(502, { "content-type": "text/plain; charset=utf-8", connection: "close" });
    res.end(body);
    ctx.report(decision, reportFacts(facts, 502));
  };
  // the server's 100 Continue is the client's cue to send its body: passed on before the answer,
  // never to an HTTP/1.0 client (RFC 9110, 15.2)
  up.on("continue", () => {
    if (req.httpVersion !== "1.0" && !res.headersSent) res.writeContinue();
  });
  up.on("information", (info) => {
    // 100 is passed as "continue" above; a 1xx moat does not pass is dropped without a word
    if (!passable(info.statusCode)) return;
    if (!passInformation1(info, res, req.httpVersion))
      ctx.log(
        `http: upstream ${ctx.original.ip}:${ctx.original.port} sent ${info.statusCode}; not passed on`,
      );
  });
  up.on("response", (answer) => {
    const head = passableHead(answer);
    if (!head) {
      ctx.log(
        `http: upstream ${ctx.original.ip}:${ctx.original.port} sent an answer moat cannot pass on (status ${answer.statusCode}); closed it with 502`,
      );
      up.destroy();
      badGateway("moat: the server's answer is malformed\n");
      return;
    }
    if (!headWritten(res, head)) {
      ctx.log(
        `http: upstream ${ctx.original.ip}:${ctx.original.port} sent a head Node cannot send to this client (status ${head.status}); closed it with 502`,
      );
      up.destroy();
      badGateway("moat: the server's answer is malformed\n");
      return;
    }
    cutShort(answer, res, up);
    answer.pipe(res);
    ctx.report(decision, reportFacts(facts, head.status));
  });
  up.on("error", (err) => {
    const why = upstreamFailure(err);
    ctx.log(
      `http: upstream ${ctx.original.ip}:${ctx.original.port} failed: ${err.message}; ${why}`,
    );
    if (res.writableEnded) return;
    if (res.headersSent) return void res.destroy();
    badGateway(`moat: ${why}\n`);
  });
  res.on("close", () => {
    if (!res.writableFinished) up.destroy();
  });
  req.pipe(up);
}

/** A request as Node's server hands it over, and its answer. */
interface Pending {
  req: IncomingMessage;
  res: ServerResponse;
}

/** Requests of one connection judged and relayed at a time (the next waits for the answer). */
const IN_FLIGHT = 1;
/** Requests read ahead of the answers (pipelined), at most: one more closes the connection. */
const MAX_PIPELINED = 16;

/**
 * One connection's requests, in order: IN_FLIGHT at a time go to `start`. One the client
 * pipelines behind them waits unjudged, and reading the client pauses (its arrival means the
 * requests before it were read whole): a server that never answers holds a bounded number of a
 * client's requests, not all it sends. Node parses a whole read at once, so a read may still
 * bring several: past MAX_PIPELINED waiting, `overflow`. `idle`: nothing in flight any more.
 */
function inOrder(
  client: Socket,
  on: { start: (p: Pending) => void; overflow: () => void; idle: () => void },
): (p: Pending) => void {
  const waiting: Pending[] = [];
  let inFlight = 0;
  const run = (p: Pending) => {
    inFlight++;
    p.res.once("close", () => {
      inFlight--;
      next();
    });
    on.start(p);
  };
  const next = () => {
    if (client.destroyed) return;
    const p = waiting.shift();
    if (p) run(p);
    // none read ahead any more: read on (the body of the one just started, the next request)
    if (waiting.length === 0) client.resume();
    if (inFlight === 0) on.idle();
  };
  return (p) => {
    if (client.destroyed) return;
    if (inFlight < IN_FLIGHT) return run(p);
    if (waiting.length >= MAX_PIPELINED) return on.overflow();
    waiting.push(p);
    client.pause();
  };
}

/**
 * Relays one request; a throw (Node refusing what it was asked to send) ends this request with
 * 502, never the daemon.
 */
function relayed(ctx: L7Context, agent: UpstreamAgent, req: IncomingMessage, res: ServerResponse) {
  try {
    exchange(ctx, agent, req, res);
  } catch (err) {
    ctx.log(`http: a request moat could not relay: ${(err as Error).message}; 502`);
    try {
      if (res.headersSent) throw new Error("answer already started");
      res.writeHead(502, { "content-type": "text/plain; charset=utf-8", connection: "close" });
      res.end("moat: the request could not be relayed\n");
    } catch {
      res.destroy();
    }
  }
}

export function serveHttp1(ctx: L7Context, limits: HttpLimits): Promise<void> {
  const client = ctx.client;
  const agent = new UpstreamAgent(() => ctx.connectUpstream());
  const server = createServer({
    maxHeaderSize: limits.maxHeaderBytes,
    // only websocket switches protocols through moat; any other Upgrade (h2c) is a plain request
    shouldUpgradeCallback: (req) => /^websocket$/i.test(req.headers.upgrade ?? ""),
  });
  // idle keep-alive connections are timed by the header clock below (408), not by Node's
  // shorter keep-alive timer, which closes without a word and tells the client
  // `Keep-Alive: timeout=5`, a limit its server never set
  server.keepAliveTimeout = 0;
  const clock = headersClock(limits.headersTimeoutMs, () => {
    ctx.log("http: no complete request head in time; closed with 408");
    if (client.writable) client.end(TIMEOUT_RESPONSE);
    client.destroySoon();
  });
  let closed = false;
  const take = inOrder(client, {
    start: ({ req, res }) => relayed(ctx, agent, req, res),
    overflow: () => {
      ctx.log(`http: more than ${MAX_PIPELINED} requests pipelined ahead of the answers; closed`);
      client.destroy();
    },
    idle: () => {
      if (!closed) clock.start();
    },
  });
  const onRequest = (req: IncomingMessage, res: ServerResponse) => {
    clock.stop();
    take({ req, res });
  };
  server.on("request", onRequest);
  // Expect: 100-continue: judged before anyone answers it (else Node's server sends `100 Continue`
  // at once, and a client would send its body toward a request moat then refuses); another
  // expectation: judged and forwarded like any request (else Node's server answers 417 itself,
  // unjudged and unreported)
  server.on("checkContinue", onRequest);
  server.on("checkExpectation", onRequest);
  const handOver = (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    clock.stop();
    // a failure here is this connection's: logged and reset, never the daemon's
    tunnel(ctx, req, socket as Socket, head).catch((err: unknown) => {
      ctx.log(`http: tunnel failed: ${err instanceof Error ? err.message : String(err)}`);
      socket.destroy();
    });
  };
  server.on("connect", handOver);
  server.on("upgrade", handOver);
  server.on("clientError", (err: NodeJS.ErrnoException, socket: Duplex) => {
    ctx.log(`http: refused a malformed request (${err.code ?? err.message})`);
    clock.stop();
    if (err.code?.startsWith("HPE_") && socket.writable) {
      socket.end(parseErrorResponse(err.code));
      socket.once("finish", () => socket.destroy());
    } else socket.destroy();
  });
  return new Promise((resolve) => {
    client.on("close", () => {
      closed = true;
      clock.stop();
      agent.destroy();
      resolve();
    });
    client.unshift(ctx.head);
    server.emit("connection", client);
    clock.start();
    client.resume();
  });
}

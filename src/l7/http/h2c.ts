// h2c with prior knowledge: Node's http2 server reads the client's streams (the socket is handed
// to a server that never listens); each stream is judged, then refused with 403 or re-sent on one
// HTTP/2 connection upstream per client connection.
import {
  connect,
  constants,
  createServer,
  type ClientHttp2Session,
  type IncomingHttpHeaders,
  type ServerHttp2Stream,
} from "node:http2";
import type { HttpFacts } from "../../policy/facts.ts";
import type { L7Context } from "../types.ts";
import { expectationsForServer } from "./expect.ts";
import { endToEnd } from "./headers.ts";
import { passable, passInformation2 } from "./informational.ts";
import { headersClock, type HttpLimits } from "./limits.ts";
import { blockedBody } from "./refusals.ts";
import {
  destinationAuthority,
  flatHeaders,
  malformedHost,
  reportFacts,
  requestTarget,
} from "./request-facts.ts";
import { withHead } from "./socket-stream.ts";

const TEXT = "text/plain; charset=utf-8";
/**
 * Streams a client may have open at once (SETTINGS_MAX_CONCURRENT_STREAMS; Node's default is
 * unbounded): one more is refused, so a server that never answers holds at most this many.
 */
const MAX_STREAMS = 100;

function h2Facts(headers: IncomingHttpHeaders): {
  facts: HttpFacts;
  target: string;
  malformed: string | null;
} {
  const t = requestTarget(String(headers[":path"] ?? ""));
  const host = String(headers[":authority"] ?? headers.host ?? "");
  // `:path` is the path and query (RFC 9113, 8.3.1): an absolute form would name a host of its
  // own, which a server may serve in place of the one judged
  const malformed =
    t.authority !== undefined ? "a :path in absolute form" : malformedHost(undefined, host);
  const facts: HttpFacts = {
    host,
    method: String(headers[":method"] ?? ""),
    path: t.path,
    headers: flatHeaders(headers),
    version: "2",
  };
  return { facts, target: t.target, malformed };
}

/**
 * A `host` header beside a different `:authority` makes the request malformed (RFC 9113, 8.3.1):
 * moat judges `:authority`, and a server may serve the `host`.
 */
function hostDisagrees(headers: IncomingHttpHeaders): boolean {
  const authority = headers[":authority"];
  const host = headers.host;
  if (host === undefined || authority === undefined) return false;
  const text = (v: string | string[]) => (Array.isArray(v) ? v.join(", ") : v).toLowerCase();
  return text(host) !== text(authority);
}

function answer(stream: ServerHttp2Stream, status: number, body: string): void {
  if (stream.destroyed) return;
  // the request's body is read and dropped: Node resets a stream whose body was never read as
  // soon as its answer is queued, and the reset can go out before the answer's frames do (the
  // client then gets no answer, "Empty reply" or a stream error, instead of moat's)
  stream.resume();
  stream.respond({ ":status": status, "content-type": TEXT });
  stream.end(body);
}

/**
 * Passes the server's answer head on; false when Node refuses it (respond throws on a status or
 * header it will not send, and a throw in an event handler would end the daemon).
 */
function respondAsSent(
  stream: ServerHttp2Stream,
  status: number,
  headers: IncomingHttpHeaders,
): boolean {
  try {
    stream.respond({ ...endToEnd(headers), ":status": status });
    return true;
  } catch {
    return false;
  }
}

/** The server's 100 Continue to the client, before the answer (additionalHeaders throws after). */
function passContinue(stream: ServerHttp2Stream): void {
  if (stream.destroyed || stream.headersSent) return;
  try {
    stream.additionalHeaders({ ":status": 100 });
  } catch {
    // the stream ended meanwhile: nothing to tell it
  }
}

async function exchange(
  ctx: L7Context,
  upstream: () => Promise<ClientHttp2Session>,
  stream: ServerHttp2Stream,
  headers: IncomingHttpHeaders,
): Promise<void> {
  stream.on("error", () => {});
  if (hostDisagrees(headers)) {
    // not a policy decision: logged, not reported (docs/l7-http.md, "Malformed and slow requests")
    ctx.log("http: refused a stream whose host header differs from its :authority (400)");
    answer(stream, 400, "moat: malformed request\n");
    return;
  }
  const { facts, target, malformed } = h2Facts(headers);
  if (malformed) {
    ctx.log(`http: refused a malformed stream (${malformed}; 400)`);
    answer(stream, 400, "moat: malformed request\n");
    return;
  }
  const decision = ctx.judge({ http: facts });
  if (!decision.forward) {
    answer(stream, 403, blockedBody(decision.rule));
    ctx.report(decision, reportFacts(facts, 403));
    return;
  }
  if (facts.method === "CONNECT") {
    // a tunnel inside one stream cannot be spliced: refused (docs/l7-http.md)
    answer(stream, 501, "moat: CONNECT over HTTP/2 is not relayed\n");
    ctx.report(decision, reportFacts(facts, 501));
    return;
  }
  let session: ClientHttp2Session;
  try {
    session = await upstream();
  } catch (err) {
    ctx.log(`http: upstream failed: ${err instanceof Error ? err.message : String(err)}`);
    answer(stream, 502, "moat: the server did not answer\n");
    ctx.report(decision, reportFacts(facts, 502));
    return;
  }
  const pseudo: Record<string, string> = {
    ":method": facts.method,
    ":path": target,
    ":scheme": String(headers[":scheme"] ?? "http"),
  };
  if (headers[":authority"] !== undefined) pseudo[":authority"] = facts.host;
  // Expect is no connection-specific field in HTTP/2 (RFC 9113, 8.2.2): forwarded as HTTP/1.1
  // forwards it, 100-continue too, and the server's 100 passed back (a 1xx HEADERS frame, RFC
  // 9113, 8.1), so the stream waits for the server's cue, never moat's
  const expect = expectationsForServer(headers.expect, "2");
  const up = session.request({
    ...endToEnd(headers),
    ...(expect !== undefined ? { expect } : {}),
    ...pseudo,
  });
  up.on("continue", () => passContinue(stream));
  up.on("headers", (info) => {
    const status = Number(info[":status"]);
    // 100 is passed as "continue" above; a 1xx moat does not pass is dropped without a word
    if (!passable(status)) return;
    if (!passInformation2(info, stream))
      ctx.log(`http: upstream stream sent ${status}; not passed on`);
  });
  up.on("response", (answerHeaders) => {
    const status = Number(answerHeaders[":status"] ?? 502);
    if (stream.destroyed) return;
    if (!respondAsSent(stream, status, answerHeaders)) {
      ctx.log(`http: upstream stream sent an answer moat cannot pass on (status ${status}); 502`);
      up.close(constants.NGHTTP2_CANCEL);
      answer(stream, 502, "moat: the server's answer is malformed\n");
      ctx.report(decision, reportFacts(facts, 502));
      return;
    }
    up.pipe(stream);
    ctx.report(decision, reportFacts(facts, status));
  });
  up.on("error", (err) => {
    ctx.log(`http: upstream stream failed: ${err.message}`);
    if (!stream.headersSent) {
      answer(stream, 502, "moat: the server did not answer\n");
      ctx.report(decision, reportFacts(facts, 502));
    } else stream.close(constants.NGHTTP2_INTERNAL_ERROR);
  });
  stream.on("close", () => {
    if (!up.closed) up.close(constants.NGHTTP2_CANCEL);
  });
  stream.pipe(up);
}

export function serveH2c(ctx: L7Context, limits: HttpLimits): Promise<void> {
  const client = ctx.client;
  const server = createServer({
    settings: { maxHeaderListSize: limits.maxHeaderBytes, maxConcurrentStreams: MAX_STREAMS },
  });
  let session: Promise<ClientHttp2Session> | undefined;
  const authority = destinationAuthority(ctx.original, 80);
  const upstream = () =>
    (session ??= ctx.connectUpstream().then((socket) => {
      const s = connect(`http://${authority}`, { createConnection: () => socket });
      s.on("error", (err) => ctx.log(`http: upstream session failed: ${err.message}`));
      return s;
    }));
  const clock = headersClock(limits.headersTimeoutMs, () => {
    ctx.log("http: no HTTP/2 request in time; closed");
    client.destroy();
  });
  let open = 0;
  let closed = false;
  server.on("session", (s) => s.on("error", () => {}));
  server.on("stream", (stream: ServerHttp2Stream, headers: IncomingHttpHeaders) => {
    open++;
    clock.stop();
    stream.on("close", () => {
      if (--open === 0 && !closed) clock.start();
    });
    // a failure here is this stream's: logged and reset, never the daemon's
    exchange(ctx, upstream, stream, headers).catch((err: unknown) => {
      ctx.log(`http: stream failed: ${err instanceof Error ? err.message : String(err)}`);
      stream.close(constants.NGHTTP2_INTERNAL_ERROR);
    });
  });
  return new Promise((resolve) => {
    client.on("close", () => {
      closed = true;
      clock.stop();
      void session?.then(
        (s) => s.destroy(),
        () => {},
      );
      resolve();
    });
    server.emit("connection", withHead(client, ctx.head));
    clock.start();
    client.resume();
  });
}

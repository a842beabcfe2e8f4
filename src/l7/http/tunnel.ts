// CONNECT and Upgrade: websocket. The request is judged like any other; once allowed and the
// server has switched (2xx to CONNECT, 101 to the upgrade), nothing more can be judged, so both
// sockets go to the relay's splice. Any other answer goes back and the connection ends: the bytes
// a client sends after it are never forwarded unjudged.
import type { IncomingMessage } from "node:http";
import type { Socket } from "node:net";
import type { L7Context } from "../types.ts";
import { endToEnd, headLines } from "./headers.ts";
import { MAX_ANSWER_HEADER_BYTES } from "./limits.ts";
import { blockedBody, closingResponse, upstreamFailure } from "./refusals.ts";
import { reportFacts, requestFacts } from "./request-facts.ts";
import { http } from "./node-http.ts";

const { request } = http;

export async function tunnel(ctx: L7Context, req: IncomingMessage, client: Socket, head: Buffer) {
  const { facts, target, authority, malformed } = requestFacts(req);
  if (malformed) {
    ctx.log(`http: refused a malformed request (${malformed})`);
    client.end(closingResponse(400, "Bad Request", "moat: malformed request\n"));
    return;
  }
  const decision = ctx.judge({ http: facts });
  if (!decision.forward) {
    client.end(closingResponse(403, "Forbidden", blockedBody(decision.rule)));
    ctx.report(decision, reportFacts(facts, 403));
    return;
  }
  let upstream: Socket;
  try {
    upstream = await ctx.connectUpstream();
  } catch (err) {
    ctx.log(`http: upstream failed: ${err instanceof Error ? err.message : String(err)}`);
    client.end(closingResponse(502, "Bad Gateway", "moat: the server did not answer\n"));
    ctx.report(decision, reportFacts(facts, 502));
    return;
  }
  const headers = endToEnd(req.headers);
  // the server serves the host moat judged: the target's authority, not another Host
  if (authority !== undefined) headers.host = authority;
  if (req.method !== "CONNECT") {
    headers.connection = "Upgrade";
    headers.upgrade = req.headers.upgrade ?? "websocket";
  }
  const up = request({
    createConnection: () => upstream,
    method: req.method,
    path: target,
    headers,
    setHost: false,
    maxHeaderSize: MAX_ANSWER_HEADER_BYTES,
  });
  const switched = (answer: IncomingMessage, socket: Socket, upHead: Buffer) => {
    const status = answer.statusCode ?? 0;
    socket.on("error", () => {});
    // Node's client takes any answer to CONNECT for a switch: only 2xx opens a tunnel
    const opened = req.method === "CONNECT" ? status >= 200 && status < 300 : status === 101;
    if (!opened) {
      refused(client, socket, answer, upHead);
      ctx.report(decision, reportFacts(facts, status));
      return;
    }
    client.write(answerHead(status, answer.statusMessage, headLines(answer.rawHeaders)));
    if (upHead.length > 0) client.write(upHead);
    if (head.length > 0) socket.write(head);
    // a splice may fail (a side reset meanwhile): both sides end, the daemon goes on
    ctx.splice(client, socket).then(
      (splice) => ctx.report(decision, reportFacts(facts, status), { splice }),
      (err: unknown) => {
        ctx.log(`http: tunnel not spliced: ${err instanceof Error ? err.message : String(err)}`);
        client.resetAndDestroy();
        socket.resetAndDestroy();
      },
    );
  };
  up.on("connect", switched);
  up.on("upgrade", switched);
  // the server refused to switch: its answer goes back and the connection ends
  up.on("response", (answer) => {
    const status = answer.statusCode ?? 502;
    // Content-Length stays: the body Node read is that long; without one it ends at the close
    const lines = fieldLines(endToEnd(answer.headers, []));
    client.write(answerHead(status, answer.statusMessage, `${lines}Connection: close\r\n`));
    answer.pipe(client);
    ctx.report(decision, reportFacts(facts, status));
  });
  up.on("error", (err) => {
    const why = upstreamFailure(err);
    ctx.log(`http: upstream failed: ${err.message}; ${why}`);
    client.end(closingResponse(502, "Bad Gateway", `moat: ${why}\n`));
    ctx.report(decision, reportFacts(facts, 502));
  });
  up.end();
}

/** Headers as field lines, one per value. */
const fieldLines = (headers: Record<string, string | string[]>): string =>
  Object.entries(headers)
    .flatMap(([name, value]) =>
      (Array.isArray(value) ? value : [value]).map((v) => `${name}: ${v}\r\n`),
    )
    .join("");

/**
 * A response head as bytes. Node reads each byte of a reason or header value as one character
 * (latin1): written back the same way, the bytes arrive as the server sent them.
 */
const answerHead = (status: number, reason: string | undefined, lines: string): Buffer =>
  Buffer.from(`HTTP/1.1 ${status} ${reason ?? ""}\r\n${lines}\r\n`, "latin1");

/**
 * A CONNECT the server answered with no 2xx: its answer goes back (the body as far as its
 * Content-Length says, else until the server closes) and the connection ends; nothing more of
 * the client's is read.
 */
function refused(client: Socket, socket: Socket, answer: IncomingMessage, upHead: Buffer): void {
  const lines = fieldLines(endToEnd(answer.headers, ["transfer-encoding"]));
  client.write(
    answerHead(answer.statusCode ?? 502, answer.statusMessage, `${lines}Connection: close\r\n`),
  );
  const declared = Number(answer.headers["content-length"] ?? NaN);
  let left = Number.isSafeInteger(declared) && declared >= 0 ? declared : Infinity;
  const done = () => {
    socket.destroy();
    if (client.destroyed) return;
    client.end();
    client.resume(); // what the client still sends is read and dropped, never forwarded
  };
  const pass = (chunk: Buffer) => {
    const part = chunk.subarray(0, Math.min(chunk.length, left));
    left -= part.length;
    if (part.length > 0 && client.writable) client.write(part);
    if (left <= 0) done();
  };
  client.once("close", () => socket.destroy());
  socket.once("end", done);
  socket.once("close", done);
  pass(upHead);
  if (left > 0) {
    socket.on("data", pass);
    socket.resume();
  }
}

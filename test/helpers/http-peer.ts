// An HTTP server for a lab namespace that speaks HTTP/1.x and HTTP/2 with prior knowledge (h2c)
// on one port: `node http-peer.ts PORT`. A connection that starts with HTTP/2's preface goes to
// an http2 server, any other to an http server. Every request is answered 200 with
// "hello over HTTP/VERSION" and printed as a line "seen VERSION METHOD PATH", so a test sees
// what reached the server (and what never did). A path with "/hints" gets a 103 Early Hints with
// a Link header first.
import { createServer as createHttp1, type IncomingMessage, type ServerResponse } from "node:http";
import {
  createServer as createH2c,
  type Http2ServerRequest,
  type Http2ServerResponse,
} from "node:http2";
import { createServer } from "node:net";
import { withHead } from "../../src/l7/http/socket-stream.ts";

const port = Number(process.argv[2]);
const PREFACE = Buffer.from("PRI * HTTP/2.0");
const HINT = "</style.css>; rel=preload; as=style";

function answer(
  req: IncomingMessage | Http2ServerRequest,
  res: ServerResponse | Http2ServerResponse,
): void {
  process.stdout.write(`seen ${req.httpVersion} ${req.method} ${req.url}\n`);
  if (req.url?.includes("/hints")) res.writeEarlyHints({ link: HINT });
  req.resume();
  req.on("end", () => {
    res.statusCode = 200;
    res.end(`hello over HTTP/${req.httpVersion}\n`);
  });
}

const http1 = createHttp1(answer);
const h2c = createH2c(answer);

createServer((socket) => {
  socket.on("error", () => {});
  let head = Buffer.alloc(0);
  const sniff = (data: Buffer) => {
    head = Buffer.concat([head, data]);
    const n = Math.min(head.length, PREFACE.length);
    const h2 = head.subarray(0, n).equals(PREFACE.subarray(0, n));
    if (h2 && n < PREFACE.length) return; // too short to tell yet
    socket.off("data", sniff);
    socket.pause();
    // http2 would read the socket's handle past the bytes read here: give it a stream with them
    // in front (as moat's relay does); http reads what is put back
    if (h2) h2c.emit("connection", withHead(socket, head));
    else {
      socket.unshift(head);
      http1.emit("connection", socket);
      socket.resume();
    }
  };
  socket.on("data", sniff);
}).listen(port, "::", () => process.stdout.write("listening\n"));

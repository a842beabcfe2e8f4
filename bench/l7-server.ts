// B7's servers, in the lab's peer namespace: HTTP on port 80 and HTTPS on 443 (the test's
// certificate), both answering `GET /small` with two bytes and `GET /big?bytes=N` with N zero
// bytes streamed in 256 KiB writes. Prints "listening" once both listen.
//
//   node bench/l7-server.ts ADDRESS CERT KEY
import { createServer as createHttp, type IncomingMessage, type ServerResponse } from "node:http";
import { createServer as createHttps } from "node:https";
import { readFileSync } from "node:fs";

const [address = "0.0.0.0", cert = "", key = ""] = process.argv.slice(2);
const CHUNK = Buffer.alloc(256 * 1024);

function answer(req: IncomingMessage, res: ServerResponse): void {
  const url = new URL(req.url ?? "/", "http://x");
  if (url.pathname !== "/big") {
    res.end("ok");
    return;
  }
  let left = Number(url.searchParams.get("bytes") ?? 0);
  res.writeHead(200, { "content-length": String(left) });
  const pump = () => {
    while (left > 0) {
      const n = Math.min(left, CHUNK.length);
      left -= n;
      if (!res.write(n === CHUNK.length ? CHUNK : CHUNK.subarray(0, n))) {
        res.once("drain", pump);
        return;
      }
    }
    res.end();
  };
  pump();
}

const http = createHttp(answer);
const https = createHttps({ cert: readFileSync(cert), key: readFileSync(key) }, answer);
let up = 0;
const ready = () => ++up === 2 && console.log("listening");
http.listen(80, address, ready);
https.listen(443, address, ready);

// A feed server for a lab namespace: `node feed-server.ts FILE PORT` serves FILE on
// 127.0.0.1:PORT with an ETag (its sha256), answers If-None-Match with 304, and prints one line
// a request ("GET 200", "GET 304") so a test sees what the daemon asked.
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { createServer } from "node:http";

const [file = "", port = "0"] = process.argv.slice(2);
createServer((req, res) => {
  const body = readFileSync(file);
  const etag = `"${createHash("sha256").update(body).digest("hex").slice(0, 16)}"`;
  if (req.headers["if-none-match"] === etag) {
    res.writeHead(304, { etag }).end();
    console.log("GET 304");
    return;
  }
  res.writeHead(200, { etag, "content-type": "text/plain" }).end(body);
  console.log("GET 200");
}).listen(Number(port), "127.0.0.1", () => console.log("listening"));

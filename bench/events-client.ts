// B6's live API subscriber (bench/events.ts): a separate process holding one SSE subscription on
// the API's unix socket and counting the events it receives. Each line on stdin asks for the
// count so far; the answer is one line on stdout.
//
//   node bench/events-client.ts SOCKET
import { request } from "node:http";
import { createInterface } from "node:readline";

const socketPath = process.argv[2];
if (!socketPath) throw new Error("usage: events-client.ts SOCKET");

let count = 0;
let tail = "";
const MARK = "event: ";

const req = request({ socketPath, path: "/v1/events/stream" }, (res) => {
  res.setEncoding("utf8");
  res.on("data", (chunk: string) => {
    // every event is "event: TYPE\ndata: JSON\n\n"; JSON never holds a raw newline
    const text = tail + chunk;
    let at = text.startsWith(MARK) ? 0 : text.indexOf(`\n${MARK}`);
    while (at >= 0) {
      count++;
      at = text.indexOf(`\n${MARK}`, at + 1);
    }
    // keep what a marker split across chunks needs
    tail = text.slice(-MARK.length);
    if (tail.includes("\n")) tail = tail.slice(tail.lastIndexOf("\n"));
    else tail = "";
  });
  res.on("end", () => process.exit(0));
  process.stdout.write("subscribed\n");
});
req.on("error", (err) => {
  process.stderr.write(`${err.message}\n`);
  process.exit(1);
});
req.end();

createInterface({ input: process.stdin }).on("line", () => process.stdout.write(`${count}\n`));

// Live subscribers that stop reading, in a process of their own (as they would be: other clients,
// not the one asking for status): opens N SSE subscriptions on the unix socket given, reads each
// one's first bytes, pauses it (its socket buffers then fill), and prints "stalled N". They connect
// a hundred at a time: a thousand at once overflow the listen backlog (EAGAIN on a unix socket).
import { request, type ClientRequest } from "node:http";

const [socketPath = "", count = "1000"] = process.argv.slice(2);
const requests: ClientRequest[] = [];
let stalled = 0;
const subscribe = () =>
  new Promise<void>((resolve, reject) => {
    const req = request({ socketPath, path: "/v1/events/stream" }, (res) => {
      if (res.statusCode !== 200) reject(new Error(`subscribe: HTTP ${res.statusCode}`));
      res.once("data", () => {
        res.pause();
        stalled++;
        resolve();
      });
    });
    req.on("error", reject);
    req.end();
    requests.push(req);
  });
for (let left = Number(count); left > 0; left -= 100)
  await Promise.all(Array.from({ length: Math.min(left, 100) }, subscribe));
console.log(`stalled ${stalled}`);

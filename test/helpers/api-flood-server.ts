// The API with the real event pipeline in a process of its own, for memory tests: listens on the
// unix socket given, prints "listening", and on "flood N" from stdin pushes N synthetic events
// as fast as its event loop lets it (a batch per turn), then prints "flooded"; "flood" alone
// floods until "stop".
import { createInterface } from "node:readline";
import { startApi } from "../../src/api/server.ts";
import { EventPipeline } from "../../src/observe/pipeline.ts";
import { fakeEvent } from "./events.ts";
import { testControl } from "./api-control.ts";

const [socketPath = ""] = process.argv.slice(2);
const pipeline = new EventPipeline();
const control = testControl(pipeline, { log: (line) => console.error(line) });
await startApi(control, [{ listen: `unix:${socketPath}` }]);
console.log("listening");

const PER_TURN = 500;
let n = 0;
let total = 0;
function flood(): void {
  for (let i = 0; i < PER_TURN && n < total; i++, n++)
    pipeline.push(
      fakeEvent({
        connection: n.toString(16),
        remote: { ip: `198.51.100.${n & 255}`, port: 1024 + (n & 0x7fff) },
      }),
    );
  if (n < total) setImmediate(flood);
  else console.log("flooded");
}
createInterface({ input: process.stdin }).on("line", (line) => {
  if (line === "stop") total = n;
  const m = /^flood(?: (\d+))?$/.exec(line);
  if (!m) return;
  total = m[1] === undefined ? Infinity : Number(m[1]);
  flood();
});

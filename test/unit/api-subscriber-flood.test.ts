// Live subscribers under a flood: 1,000 SSE subscribers that do not read, an event flood, and
// the API process stays bounded in memory, answers status throughout and gets through the flood;
// each stalled subscriber loses events, counted, instead of buffering them. (Figures:
// docs/performance.md.)
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { request, type ClientRequest } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { spawnLines } from "../helpers/child.ts";
import { http } from "../helpers/api-client.ts";
import { NODE, ROOT } from "../helpers/paths.ts";

const SUBSCRIBERS = 1000;
/** Generous: the old per-subscriber buffering went past 4 GB; the bar is 300 MB. */
const RSS_BOUND_MB = 600;
const FLOOD = 200_000;
/** "Does not hang": the old per-subscriber serialisation needed minutes for this flood. */
const DONE_MS = 90_000;

interface Sink {
  name: string;
  delivered: number;
  dropped: number;
  queued: number;
}

const rssMb = (pid: number, field: "VmRSS" | "VmHWM") => {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(
    readFileSync(`/proc/${pid}/status`, "utf8"),
  );
  return Number(m?.[1]) / 1024;
};

test("a flood with 1,000 stalled SSE subscribers stays bounded in memory and status answers", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "moat-flood-"));
  const socketPath = join(dir, "api.sock");
  const server = spawnLines(NODE, [
    "--disable-warning=ExperimentalWarning",
    `${ROOT}test/helpers/api-flood-server.ts`,
    socketPath,
  ]);
  const requests: ClientRequest[] = [];
  t.after(() => {
    for (const r of requests) r.destroy();
    server.proc.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  });
  await server.waitFor(/^listening$/);
  const pid = server.proc.pid ?? 0;

  // subscribers that read the first bytes and then stop reading: their socket buffers fill
  let opened = 0;
  await Promise.all(
    Array.from(
      { length: SUBSCRIBERS },
      () =>
        new Promise<void>((resolve, reject) => {
          const req = request({ socketPath, path: "/v1/events/stream" }, (res) => {
            assert.equal(res.statusCode, 200);
            res.once("data", () => {
              res.pause();
              opened++;
              resolve();
            });
          });
          req.on("error", reject);
          req.end();
          requests.push(req);
        }),
    ),
  );
  assert.equal(opened, SUBSCRIBERS);

  const started = performance.now();
  server.proc.stdin?.write(`flood ${FLOOD}\n`);
  let flooded = false;
  server.waitFor(/^flooded$/, DONE_MS).then(
    () => (flooded = true),
    () => {}, // the loop below fails the test
  );
  let slowest = 0;
  let queued = -1;
  while (!flooded || queued !== 0) {
    assert.ok(
      performance.now() - started < DONE_MS,
      `the flood was ${flooded ? "" : "not "}pushed and ${queued} events wait after ${DONE_MS} ms`,
    );
    const rss = rssMb(pid, "VmRSS");
    assert.ok(rss < RSS_BOUND_MB, `the API process reached ${rss.toFixed(0)} MB RSS`);
    const asked = performance.now();
    const status = await http({ socketPath }, "GET", "/v1/status");
    slowest = Math.max(slowest, performance.now() - asked);
    assert.equal(status.status, 200);
    const sink = (JSON.parse(status.body) as { sinks: Sink[] }).sinks.find(
      (x) => x.name === "api-subscriber",
    );
    queued = sink?.queued ?? -1;
    await new Promise((r) => setTimeout(r, 250));
  }
  const took = performance.now() - started;
  const peak = rssMb(pid, "VmHWM");
  const status = JSON.parse((await http({ socketPath }, "GET", "/v1/status")).body) as {
    sinks: Sink[];
  };
  const subscribers = status.sinks.find((s) => s.name === "api-subscriber");
  console.log(
    `# ${SUBSCRIBERS} stalled subscribers, ${FLOOD} events: all pushed and handled in ${took.toFixed(0)} ms, peak RSS ${peak.toFixed(0)} MB, slowest status ${slowest.toFixed(0)} ms, (event, subscriber) pairs delivered ${subscribers?.delivered}, dropped ${subscribers?.dropped}`,
  );
  assert.ok(peak < RSS_BOUND_MB, `peak RSS ${peak.toFixed(0)} MB`);
  assert.ok((subscribers?.dropped ?? 0) > 0, "the stalled subscribers' losses are counted");
});

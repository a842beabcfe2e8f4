// Live subscribers under a flood: 1,000 SSE subscribers that do not read, an event flood, and
// the API process stays bounded in memory and answers status; each stalled subscriber loses
// events, counted, instead of buffering them. (Figures: docs/performance.md.)
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
const FLOOD_MS = 6000;

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

  server.proc.stdin?.write("flood\n");
  const end = Date.now() + FLOOD_MS;
  let slowest = 0;
  while (Date.now() < end) {
    const rss = rssMb(pid, "VmRSS");
    assert.ok(rss < RSS_BOUND_MB, `the API process reached ${rss.toFixed(0)} MB RSS`);
    const started = performance.now();
    const status = await http({ socketPath }, "GET", "/v1/status");
    slowest = Math.max(slowest, performance.now() - started);
    assert.equal(status.status, 200);
    await new Promise((r) => setTimeout(r, 250));
  }
  const peak = rssMb(pid, "VmHWM");
  const sinks = JSON.parse((await http({ socketPath }, "GET", "/v1/status")).body) as {
    sinks: { name: string; delivered: number; dropped: number }[];
    events: { blocked: number };
  };
  const subscribers = sinks.sinks.find((s) => s.name === "api-subscriber");
  console.log(
    `# ${SUBSCRIBERS} stalled subscribers, ${sinks.events.blocked} events in ${FLOOD_MS} ms: peak RSS ${peak.toFixed(0)} MB, slowest status ${slowest.toFixed(0)} ms, subscriber losses ${subscribers?.dropped}`,
  );
  assert.ok(peak < RSS_BOUND_MB, `peak RSS ${peak.toFixed(0)} MB`);
  assert.ok(slowest < 5000, `status took ${slowest.toFixed(0)} ms under the flood`);
  assert.ok((subscribers?.dropped ?? 0) > 0, "the stalled subscribers' losses are counted");
});

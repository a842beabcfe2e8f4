// Live subscribers under a flood: 1,000 SSE subscribers that do not read (in a process of their
// own, as other clients would be), an event flood, and the API process stays bounded in memory,
// answers status throughout and gets through the flood; each stalled subscriber loses events,
// counted, instead of buffering them. Nothing is timed: how long status waits is measured in
// what the flood pushed meanwhile (the flood and the API share one event loop, so a fan-out that
// holds the loop lets the flood's turns through and starves the status request of its own).
// (Figures: docs/performance.md.)
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { spawnLines } from "../helpers/child.ts";
import { http } from "../helpers/api-client.ts";
import { MOAT, NODE, ROOT } from "../helpers/paths.ts";

const SUBSCRIBERS = 1000;
/** The bar (the old per-subscriber buffering went past 4 GB; measured now: 207-222 MB). */
const RSS_BOUND_MB = 300;
/** Status answers asked back to back while the flood runs. */
const ANSWERS = 40;
/**
 * Events the flood may push while one status request waits: 100 of its turns (500 events each).
 * A status request needs a few turns of the API's loop; a fan-out that holds the loop for
 * seconds lets hundreds of thousands through.
 */
const EVENTS_PER_ANSWER = 50_000;
/** "Does not hang": the old per-subscriber serialisation needed minutes for a flood like this. */
const DONE_MS = 90_000;

interface Sink {
  name: string;
  delivered: number;
  dropped: number;
  queued: number;
}

interface Status {
  events: Record<string, number>;
  sinks: Sink[];
}

const rssMb = (pid: number, field: "VmRSS" | "VmHWM") => {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(
    readFileSync(`/proc/${pid}/status`, "utf8"),
  );
  return Number(m?.[1]) / 1024;
};

const eventsSeen = (s: Status) => Object.values(s.events).reduce((a, b) => a + b, 0);

test("a flood with 1,000 stalled SSE subscribers stays bounded in memory and status answers", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "moat-flood-"));
  const socketPath = join(dir, "api.sock");
  const node = (file: string, ...args: string[]) =>
    spawnLines(NODE, ["--disable-warning=ExperimentalWarning", `${ROOT}${file}`, ...args]);
  const server = node("test/helpers/api-flood-server.ts", socketPath);
  const subscribers: ReturnType<typeof spawnLines>[] = [];
  t.after(() => {
    for (const c of [server, ...subscribers]) c.proc.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  });
  await server.waitFor(/^listening$/);
  const pid = server.proc.pid ?? 0;
  subscribers.push(node("test/helpers/stalled-subscribers.ts", socketPath, String(SUBSCRIBERS)));
  await subscribers[0]?.waitFor(new RegExp(`^stalled ${SUBSCRIBERS}$`), 60_000);

  const started = performance.now();
  const status = async (): Promise<Status> => {
    assert.ok(performance.now() - started < DONE_MS, `not done after ${DONE_MS} ms`);
    const rss = rssMb(pid, "VmRSS");
    assert.ok(rss < RSS_BOUND_MB, `the API process reached ${rss.toFixed(0)} MB RSS`);
    const reply = await http({ socketPath }, "GET", "/v1/status");
    assert.equal(reply.status, 200);
    return JSON.parse(reply.body) as Status;
  };
  const hub = (s: Status) => s.sinks.find((x) => x.name === "api-subscriber");

  server.send("flood");
  const waits: number[] = [];
  const pushed: number[] = [];
  let before = eventsSeen(await status());
  while (pushed.length < ANSWERS) {
    const asked = performance.now();
    const seen = eventsSeen(await status());
    waits.push(performance.now() - asked);
    pushed.push(seen - before);
    before = seen;
  }
  // and what a user types, during the flood
  const cliStarted = performance.now();
  const cli = await new Promise<{ code: number; out: string }>((resolve) =>
    execFile(MOAT, ["status", "--api", `unix:${socketPath}`], (err, stdout, stderr) =>
      resolve({ code: err ? Number(err.code ?? 1) : 0, out: `${stdout}${stderr}` }),
    ),
  );
  const cliMs = performance.now() - cliStarted;
  assert.equal(cli.code, 0, cli.out);
  assert.match(cli.out, /^sinks: .*api-subscriber \d+ delivered, \d+ dropped/m);
  assert.ok(eventsSeen(await status()) > before, "the flood still ran during moat status");
  server.send("stop");
  await server.waitFor(/^flooded$/, DONE_MS);
  let last = await status();
  while (hub(last)?.queued !== 0) {
    await new Promise((r) => setTimeout(r, 100));
    last = await status();
  }
  const took = performance.now() - started;
  const peak = rssMb(pid, "VmHWM");
  const subscribed = hub(last);
  const sorted = [...waits].sort((a, b) => a - b);
  console.log(
    `# ${SUBSCRIBERS} stalled subscribers, ${eventsSeen(last)} events in ${took.toFixed(0)} ms: ` +
      `peak RSS ${peak.toFixed(0)} MB, status median ${sorted[waits.length >> 1]?.toFixed(0)} ms, ` +
      `slowest ${sorted.at(-1)?.toFixed(0)} ms, moat status (CLI) ${cliMs.toFixed(0)} ms, most events pushed during one status ${Math.max(...pushed)}, ` +
      `(event, subscriber) pairs delivered ${subscribed?.delivered}, dropped ${subscribed?.dropped}`,
  );
  assert.ok(
    pushed.every((n) => n > 0),
    `the flood ran during every status answer: ${pushed.join(" ")}`,
  );
  assert.ok(
    pushed.every((n) => n <= EVENTS_PER_ANSWER),
    `status waited while the flood pushed ${Math.max(...pushed)} events (at most ${EVENTS_PER_ANSWER}): ${pushed.join(" ")}`,
  );
  assert.ok(peak < RSS_BOUND_MB, `peak RSS ${peak.toFixed(0)} MB`);
  assert.ok((subscribed?.dropped ?? 0) > 0, "the stalled subscribers' losses are counted");
});

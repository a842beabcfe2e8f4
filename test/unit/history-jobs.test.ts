// Replay and suggest jobs: a bounded queue (overall and per caller, 429 past it), a queued job
// dropped when its caller hangs up, and a time limit per job that ends its worker.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Worker } from "node:worker_threads";
import { HISTORY_JOB_LIMITS, historyJobs, runOnWorker } from "../../src/daemon/history-replay.ts";
import { HttpError } from "../../src/api/errors.ts";

const source = { historyPath: "/nonexistent/history.db", policyPath: "/p", runningText: () => "" };
const job = (owner: string, signal = new AbortController().signal) => ({ owner, signal });

/** A runner whose jobs finish only when released, in order. */
function held() {
  const started: string[] = [];
  const release: (() => void)[] = [];
  const run = (j: { id: string }) =>
    new Promise<string>((resolve) => {
      started.push(j.id);
      release.push(() => resolve(j.id));
    });
  return { started, release, run };
}

const refusedWith = (status: number) => (err: unknown) =>
  err instanceof HttpError && err.status === status;

test("the queue is bounded per caller and overall (429 past either)", async () => {
  const h = held();
  const go = historyJobs<{ id: string }, string>(source, h.run);
  const mine: Promise<unknown>[] = [];
  for (let i = 0; i < HISTORY_JOB_LIMITS.maxPerOwner; i++)
    mine.push(go({ id: `a${i}` }, job("token ev")));
  await assert.rejects(go({ id: "a-more" }, job("token ev")), refusedWith(429));
  const others: Promise<unknown>[] = [];
  let refused = 0;
  for (let i = 0; i < HISTORY_JOB_LIMITS.maxQueued + 4; i++) {
    const p = go({ id: `b${i}` }, job(`token t${i}`));
    p.catch((err: unknown) => {
      assert.ok(refusedWith(429)(err));
      refused++;
    });
    others.push(p);
  }
  await new Promise((r) => setImmediate(r));
  assert.ok(refused > 0, "past the overall bound, jobs are refused");
  while (h.release.length) {
    h.release.shift()!();
    await new Promise((r) => setImmediate(r));
  }
  await Promise.allSettled([...mine, ...others]);
});

test("a queued job whose caller hung up is dropped, never run", async () => {
  const h = held();
  const go = historyJobs<{ id: string }, string>(source, h.run);
  const first = go({ id: "first" }, job("unix"));
  const hangup = new AbortController();
  const second = go({ id: "second" }, job("token ev", hangup.signal));
  await new Promise((r) => setImmediate(r));
  hangup.abort();
  await assert.rejects(second);
  h.release.shift()!();
  assert.equal(await first, "first");
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(h.started, ["first"]);
});

test("a job past its time limit, or whose caller hung up, has its worker ended", async (t) => {
  const saved = { ...HISTORY_JOB_LIMITS };
  HISTORY_JOB_LIMITS.timeoutMs = 300;
  t.after(() => Object.assign(HISTORY_JOB_LIMITS, saved));
  const workers: Worker[] = [];
  const go = historyJobs<object, unknown>(source, () =>
    runOnWorker(() => {
      const w = new Worker("for (;;) {}", { eval: true });
      workers.push(w);
      return w;
    }, "spin"),
  );
  const exited = (w: Worker) => new Promise((r) => w.once("exit", r));
  const started = Date.now();
  await assert.rejects(go({}, job("token ev")), /time/);
  assert.ok(Date.now() - started < 3000);
  await exited(workers[0]!);

  HISTORY_JOB_LIMITS.timeoutMs = 60_000;
  const hangup = new AbortController();
  const running = go({}, job("token ev", hangup.signal));
  while (workers.length < 2) await new Promise((r) => setTimeout(r, 10));
  hangup.abort();
  await assert.rejects(running);
  await exited(workers[1]!);
});

// A filter's size is bounded where the API reads it: every live event is matched against each
// subscription's filter on the daemon's event loop, and the history's SQL has a depth limit.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { request } from "node:http";
import { startApi } from "../../src/api/server.ts";
import { MAX_NOT_FILTERS } from "../../src/api/routes.ts";
import { EventPipeline } from "../../src/observe/pipeline.ts";
import { HistoryStore } from "../../src/observe/history/store.ts";
import { testControl } from "../helpers/api-control.ts";
import { http } from "../helpers/api-client.ts";
import { fakeEvent } from "../helpers/events.ts";

const nots = (n: number) =>
  Array.from({ length: n }, (_, i) => `not=${encodeURIComponent(`rule=r${i}`)}`).join("&");

test("a filter with more `not`s than the API takes is refused, named, live and stored", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "moat-filter-size-"));
  const store = new HistoryStore(":memory:");
  store.insert([fakeEvent({ rule: "ssh" }), fakeEvent({ rule: "r1" })]);
  const pipeline = new EventPipeline();
  const control = testControl(pipeline, { queryHistory: (q) => store.query(q) });
  const socketPath = join(dir, "api.sock");
  const api = await startApi(control, [{ listen: `unix:${socketPath}` }]);
  t.after(async () => {
    await api.close();
    await pipeline.close();
    store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const at = { socketPath };

  const most = await http(at, "GET", `/v1/events?${nots(MAX_NOT_FILTERS)}`);
  assert.equal(most.status, 200, most.body);
  assert.deepEqual(
    (JSON.parse(most.body) as { events: { rule: string }[] }).events.map((e) => e.rule),
    ["ssh"],
  );
  // 800 fit in a request line (16 KiB); each one is a term every event is matched against
  const stored = await http(at, "GET", `/v1/events?${nots(800)}`);
  assert.equal(stored.status, 400, stored.body);
  assert.match(stored.body, /EFILTER/);
  assert.match(stored.body, new RegExp(`at most ${MAX_NOT_FILTERS} 'not' filters`));
  assert.equal(await streamStatus(socketPath, `/v1/events/stream?${nots(800)}`), 400);
});

/** A stream's answer status; the stream itself (if it opens) is closed at once. */
function streamStatus(socketPath: string, path: string): Promise<number | undefined> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, path, agent: false }, (res) => {
      resolve(res.statusCode);
      res.destroy();
    });
    req.on("error", reject);
    req.end();
  });
}

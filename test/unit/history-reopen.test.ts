// The history store when its disk or file goes wrong under a running daemon: a store that could
// not open (a full disk) is opened again once there is room, and until then the API's history
// queries say why (503 EHISTORYUNAVAILABLE, not an internal error); a database file removed
// while open is replaced by a new store at its path, so later events are kept.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, rmSync } from "node:fs";
import { join } from "node:path";
import { EventPipeline } from "../../src/observe/pipeline.ts";
import { HistoryWorker } from "../../src/observe/history/remote.ts";
import { startApi } from "../../src/api/server.ts";
import { fakeEvent } from "../helpers/events.ts";
import { testControl } from "../helpers/api-control.ts";
import { http } from "../helpers/api-client.ts";
import { until } from "../helpers/until.ts";
import { smallDisk } from "../helpers/small-disk.ts";

test("a history that could not open on a full disk opens once there is room; meanwhile queries answer 503", async (t) => {
  const { dir, closing } = smallDisk(t, "256k", "moat-history-reopen");
  spawnSync("dd", ["if=/dev/zero", `of=${join(dir, "fill")}`, "bs=4k"]);
  const history = new HistoryWorker(join(dir, "history.db"), { reopenMs: 200 });
  closing(() => history.close());
  await assert.rejects(history.ready, /database or disk is full/);
  const pipeline = new EventPipeline();
  const socketPath = join(dir, "api.sock");
  const api = await startApi(
    testControl(pipeline, {
      queryHistory: (q) => history.query(q),
      flowStats: (q) => history.flowStats(q),
    }),
    [{ listen: `unix:${socketPath}` }],
  );
  closing(() => api.close());

  for (const path of ["/v1/events", "/v1/stats"]) {
    const reply = await http({ socketPath }, "GET", path);
    assert.equal(reply.status, 503, `${path}: ${reply.body}`);
    const { error } = JSON.parse(reply.body) as { error: { code: string; message: string } };
    assert.equal(error.code, "EHISTORYUNAVAILABLE");
    assert.match(error.message, /history\.db: database or disk is full/);
  }

  const said: string[] = [];
  history.onStatus((line) => void said.push(line));
  rmSync(join(dir, "fill"));
  await until(
    "the history to open again",
    () =>
      history.query({}).then(
        () => true,
        () => undefined,
      ),
    15_000,
  );
  await history.insert([fakeEvent({ connection: "kept" })]);
  const page = JSON.parse((await http({ socketPath }, "GET", "/v1/events")).body) as {
    events: { connection: string }[];
  };
  assert.deepEqual(
    page.events.map((e) => e.connection),
    ["kept"],
  );
  assert.ok(
    said.some((l) => /^history .*history\.db: open again, events are kept$/.test(l)),
    `it says the history opened: ${said.join(" | ")}`,
  );
});

test("a history file removed while open is replaced by a new store at its path, which keeps later events", async (t) => {
  const { dir, closing } = smallDisk(t, undefined, "moat-history-reopen");
  const path = join(dir, "history.db");
  const history = new HistoryWorker(path, { checkMs: 100 });
  closing(() => history.close());
  await history.ready;
  const said: string[] = [];
  history.onStatus((line) => void said.push(line));
  await history.insert([fakeEvent({ connection: "before" })]);
  rmSync(path);

  await until(
    "a new history file at its path",
    () => (existsSync(path) ? true : undefined),
    15_000,
  );
  await history.insert([fakeEvent({ connection: "after" })]);
  await history.close();
  assert.ok(
    said.some((l) =>
      /^warning: history .*history\.db: the file was gone; a new one is open$/.test(l),
    ),
    `it says the file was replaced: ${said.join(" | ")}`,
  );

  const reopened = new HistoryWorker(path);
  closing(() => reopened.close());
  const page = await reopened.query({});
  assert.deepEqual(
    page.events.map((e) => e.connection),
    ["after"],
    "what came after the removal is in the file at the path",
  );
});

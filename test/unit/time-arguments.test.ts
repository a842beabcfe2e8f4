// Points in time, as the CLI and the API read them: `moat stats` and `moat events` take the same
// forms of --since/--until and refuse the same ones in the same words; a date or a date-time
// without an offset is local time, both alike; the API takes ISO 8601 times with an offset (or
// ms since the epoch) only; a statistics answer names the window its roll-up buckets cover.
import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { startApi } from "../../src/api/server.ts";
import type { ApiControl } from "../../src/api/control.ts";
import { HistoryStore } from "../../src/observe/history/store.ts";
import { EventPipeline } from "../../src/observe/pipeline.ts";
import type { StatsPage } from "../../src/observe/history/rollup.ts";
import type { Command } from "../../src/cli/command.ts";
import { UsageError } from "../../src/cli/command.ts";
import { statsCommand } from "../../src/cli/commands/stats.ts";
import { eventsCommand } from "../../src/cli/commands/events.ts";
import { parseTimePoint } from "../../src/cli/time-args.ts";
import type { MoatEvent } from "../../src/datapath/index.ts";
import { fakeEvent, fakeSnapshot } from "../helpers/events.ts";
import { http } from "../helpers/api-client.ts";
import { MOAT } from "../helpers/paths.ts";

const run = promisify(execFile);
const MINUTE = 60_000;

interface Daemon {
  socket: string;
  store: HistoryStore;
  /** The window of each question the daemon was asked, in order. */
  asked: { since?: number; until?: number }[];
}

/** A real API server on a unix socket over a real history store. */
async function daemon(t: TestContext): Promise<Daemon> {
  const dir = mkdtempSync(join(tmpdir(), "moat-time-args-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const store = new HistoryStore(join(dir, "h.db"));
  t.after(() => store.close());
  const asked: Daemon["asked"] = [];
  const pipeline = new EventPipeline();
  const control = {
    snapshot: () => fakeSnapshot(pipeline),
    queryHistory: (q) => {
      asked.push({ since: q.since, until: q.until });
      return store.query(q);
    },
    flowStats: (q) => {
      asked.push({ since: q.since, until: q.until });
      return store.flowStats(q);
    },
    log: () => {},
  } as Partial<ApiControl> as ApiControl;
  const socket = join(dir, "api.sock");
  const api = await startApi(control, [{ listen: `unix:${socket}` }]);
  t.after(() => api.close());
  return { socket, store, asked };
}

test("moat stats and moat events read --since/--until alike, and refuse alike", async (t) => {
  const d = await daemon(t);
  const outcome = async (command: Command, text: string) => {
    const values = { api: `unix:${d.socket}`, json: true, since: text, until: text };
    try {
      await command.run({ values, positionals: [] }, { out: () => {}, err: () => {} });
      return d.asked.at(-1);
    } catch (err) {
      if (!(err instanceof UsageError)) throw err;
      return { refused: err.message };
    }
  };
  for (const text of [
    "12",
    "3600",
    "Dec 5",
    "2026-12-05",
    "2026-12-05T10:00",
    "2026-12-05T10:00:00Z",
    "2026-12-05T10:00:00.5+01:00",
    "2026-02-30",
    "yesterday",
  ])
    assert.deepEqual(await outcome(statsCommand, text), await outcome(eventsCommand, text), text);
  assert.deepEqual(await outcome(statsCommand, "12"), { since: 12, until: 12 });
  const refused = (await outcome(statsCommand, "Dec 5")) as { refused?: string };
  assert.match(refused.refused ?? "", /^--since 'Dec 5' is not a time: give a duration ago/);
});

test("a point in time is a real one: no 30 February, no 24:00, none before 1970", () => {
  const now = Date.UTC(2026, 11, 6, 12);
  assert.equal(
    parseTimePoint("2026-12-06T10:00:00+01:00", "--since", now),
    Date.UTC(2026, 11, 6, 9),
  );
  assert.equal(
    parseTimePoint("2026-12-06T10:00-0530", "--since", now),
    Date.UTC(2026, 11, 6, 15, 30),
  );
  assert.equal(
    parseTimePoint("2026-12-06T10:00:00.25Z", "--since", now),
    Date.UTC(2026, 11, 6, 10, 0, 0, 250),
  );
  assert.equal(parseTimePoint("90m", "--since", now), now - 90 * MINUTE);
  for (const text of [
    "2026-02-30",
    "2026-13-01",
    "2026-12-06T24:00",
    "2026-12-06T10:00+24:00",
    "Dec 5",
    "9".repeat(20),
  ])
    assert.throws(
      () => parseTimePoint(text, "--until", now),
      (err: Error) => err.message.startsWith(`--until '${text}' is not a time: give a duration`),
      text,
    );
  assert.throws(() => parseTimePoint("1969-12-31T00:00:00Z", "--since", now), {
    message: "--since '1969-12-31T00:00:00Z' is before 1970",
  });
});

/** One stored event a time, its connection id naming it. */
const at = (connection: string, time: string): MoatEvent => fakeEvent({ connection, time });

test("a date and a date-time without an offset are both local time (TZ)", async (t) => {
  const d = await daemon(t);
  d.store.insert([
    at("nov5-03z", "2026-11-05T03:00:00.000Z"), // 22:00 on the 4th in New York
    at("nov5-06z", "2026-11-05T06:00:00.000Z"), // 01:00 on the 5th
    at("nov6-03z", "2026-11-06T03:00:00.000Z"), // 22:00 on the 5th
    at("nov6-06z", "2026-11-06T06:00:00.000Z"), // 01:00 on the 6th
  ]);
  const events = async (zone: string, since: string, until: string) => {
    const { stdout } = await run(
      MOAT,
      ["events", "--api", `unix:${d.socket}`, "--json", "--since", since, "--until", until],
      { env: { ...process.env, TZ: zone } },
    );
    return stdout
      .split("\n")
      .filter(Boolean)
      .map((l) => (JSON.parse(l) as MoatEvent).connection);
  };
  const fifth = ["nov5-06z", "nov6-03z"];
  const ny = "America/New_York";
  assert.deepEqual(await events(ny, "2026-11-05", "2026-11-06"), fifth, "dates");
  assert.deepEqual(await events(ny, "2026-11-05T00:00", "2026-11-06T00:00"), fifth, "date-times");
  assert.deepEqual(await events(ny, "2026-11-05 00:00:00", "2026-11-06 00:00:00"), fifth);
  assert.deepEqual(
    await events(ny, "2026-11-05T00:00:00Z", "2026-11-06T00:00:00Z"),
    ["nov5-03z", "nov5-06z"],
    "an offset says its own zone",
  );
  assert.deepEqual(await events("UTC", "2026-11-05", "2026-11-06"), ["nov5-03z", "nov5-06z"]);
});

test("the API takes an ISO 8601 time with an offset or ms, and refuses anything else", async (t) => {
  const d = await daemon(t);
  for (const path of ["/v1/events", "/v1/stats"]) {
    const ask = async (name: string, text: string) => {
      const reply = await http(
        { socketPath: d.socket },
        "GET",
        `${path}?${name}=${encodeURIComponent(text)}`,
      );
      return reply;
    };
    for (const [text, ms] of [
      ["2026-11-05T10:00:00Z", Date.UTC(2026, 10, 5, 10)],
      ["2026-11-05T10:00Z", Date.UTC(2026, 10, 5, 10)],
      ["2026-11-05T10:00:00+01:00", Date.UTC(2026, 10, 5, 9)],
      ["2026-11-05T10:00:00.250-05:00", Date.UTC(2026, 10, 5, 15, 0, 0, 250)],
      ["1762336800000", 1762336800000],
    ] as const) {
      const reply = await ask("since", text);
      assert.equal(reply.status, 200, `${path} since=${text}: ${reply.body}`);
      assert.equal(d.asked.at(-1)?.since, ms, `${path} since=${text}`);
    }
    for (const text of [
      "Dec 5",
      "2026-11-05T10:00", // no offset: whose zone?
      "2026-11-05",
      "2026-02-30T00:00:00Z",
      "2026-11-05T24:00:00Z",
      "-5",
    ])
      for (const name of ["since", "until"]) {
        const reply = await ask(name, text);
        assert.equal(reply.status, 400, `${path} ${name}=${text}`);
        const body = JSON.parse(reply.body) as { error: { code: string; message: string } };
        assert.equal(body.error.code, "EBADTIME");
        assert.ok(
          body.error.message.startsWith(`${name} '${text}' is not a time`),
          body.error.message,
        );
      }
  }
});

test("a statistics answer names the window its buckets cover", async (t) => {
  const d = await daemon(t);
  const now = Date.now();
  const minuteOf = (ms: number) => ms - (ms % MINUTE);
  const since = minuteOf(now - 30 * MINUTE) + 30_000;
  const until = minuteOf(now - 10 * MINUTE) + 30_000;
  const flow = (peer: string, lastMs: number) => ({
    connection: fakeEvent({
      type: "allowed",
      verdict: "allowed",
      direction: "egress",
      remote: { ip: "93.184.216.34", port: 443, names: [peer] },
    }),
    connections: 1,
    closed: 1,
    packets: 2,
    bytes: 100,
    durationMsSum: 1,
    durationMsMax: 1,
    firstMs: lastMs - 1,
    lastMs,
  });
  d.store.insertFlows([
    flow("before.example", minuteOf(since) + 10_000), // before since, in its minute
    flow("after.example", minuteOf(until) + 50_000), // after until, in its minute
    flow("outside.example", minuteOf(until) + MINUTE + 5000),
  ]);
  const reply = await http(
    { socketPath: d.socket },
    "GET",
    `/v1/stats?since=${since}&until=${until}`,
  );
  const page = JSON.parse(reply.body) as StatsPage;
  assert.deepEqual(page.rows.map((r) => r.peer).sort(), ["after.example", "before.example"]);
  assert.equal(page.since, new Date(minuteOf(since)).toISOString());
  assert.equal(page.until, new Date(minuteOf(until) + MINUTE).toISOString());
  for (const row of page.rows) {
    assert.ok(row.lastSeen >= page.since && row.lastSeen < page.until, row.peer);
  }
});

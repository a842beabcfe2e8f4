// What a local API answers that is not a decision stream (a 200 with `{}`, a `new` that is not a
// list) is a failed poll: the set keeps its entries, as for an HTTP error, and the log says what
// was wrong (an empty stream, `{"new":null,"deleted":null}`, is CrowdSec's "no decisions" and
// empties the set). A failure is logged when it starts and when it changes, not at every poll,
// and so is the recovery; a local API that is down is named by what the connection met.
import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startCrowdsec } from "../../src/daemon/crowdsec.ts";
import { dynamicSets } from "../../src/daemon/dynamic-sets.ts";
import { crowdsecModel } from "../helpers/crowdsec-model.ts";
import { freePort, listenOnLoopback } from "../helpers/ports.ts";

const BAN = { value: "203.0.113.9", scope: "Ip", type: "ban", duration: "1h" };

/** A local API answering each poll with the next of `answers` (the last one again after). */
async function fakeLapi(t: TestContext, answers: { status: number; body: string }[]) {
  let asked = 0;
  const server = createServer((_req, res) => {
    const a = answers[Math.min(asked, answers.length - 1)] ?? { status: 500, body: "" };
    asked++;
    res.writeHead(a.status, { "content-type": "application/json" }).end(a.body);
  });
  const port = await listenOnLoopback(server);
  t.after(() => server.close());
  return { url: `http://127.0.0.1:${port}`, asked: () => asked };
}

/** A bouncer on `url` filling a real dynamic set in a folder of its own. */
function bouncerOn(t: TestContext, url: string) {
  const dir = mkdtempSync(join(tmpdir(), "moat-cs-failed-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const keyFile = join(dir, "key");
  writeFileSync(keyFile, "s3cret\n", { mode: 0o600 });
  const model = crowdsecModel(url, keyFile);
  const logs: string[] = [];
  const sets = dynamicSets({
    dir: join(dir, "store"),
    model: () => model,
    refresh: () => Promise.resolve(),
    generation: () => 1,
    audit: () => {},
    log: (line) => logs.push(line),
  });
  t.after(() => sets.close());
  const bouncer = startCrowdsec({ model: () => model, sets, log: (line) => logs.push(line) });
  t.after(() => bouncer.close());
  bouncer.applied();
  const entries = () => (sets.list()[0]?.entries ?? []).map((e) => e.entry);
  const until = async (done: () => boolean, what: string) => {
    const end = Date.now() + 20_000;
    while (!done() && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
    assert.ok(done(), `${what}; entries ${JSON.stringify(entries())}; log:\n${logs.join("\n")}`);
  };
  return { logs, entries, until };
}

test("a 200 answer that is not a decision stream is a failed poll: the entries stay", async (t) => {
  const ok = (body: unknown) => ({ status: 200, body: JSON.stringify(body) });
  const lapi = await fakeLapi(t, [
    ok({ new: [BAN], deleted: null }),
    { status: 500, body: "oops" },
    ok({}),
    ok({ new: "203.0.113.9", deleted: [] }),
    ok([BAN]),
    ok({ new: null, deleted: null }),
  ]);
  const { logs, entries, until } = bouncerOn(t, lapi.url);
  await until(() => lapi.asked() >= 6, "six polls");
  await until(() => entries().length === 0, "the empty stream empties the set");
  const failures = logs.filter((l) => l.includes(" failed ("));
  assert.deepEqual(
    failures.map((l) => l.replace(/^crowdsec: set cs: polling \S+ failed /, "")),
    [
      "(HTTP 500); the entries stay",
      "(the reply is not a decision stream: it has no 'new' list); the entries stay",
      "(the reply is not a decision stream: its 'new' is a string, not a list); the entries stay",
      "(the reply is not a decision stream: it is an array, not an object); the entries stay",
    ],
  );
  // each failed poll kept the ban the first one brought
  for (let i = 0; i < logs.length; i++)
    if (logs[i]?.includes(" failed ("))
      assert.doesNotMatch(logs[i + 1] ?? "", /, 0 entries/, `after ${logs[i]}`);
});

test("a failure is logged once while it lasts, again when it changes, and the recovery", async (t) => {
  const lapi = await fakeLapi(t, [
    { status: 200, body: JSON.stringify({ new: [BAN], deleted: null }) },
    { status: 500, body: "" },
    { status: 500, body: "" },
    { status: 500, body: "" },
    { status: 503, body: "" },
    { status: 503, body: "" },
    { status: 200, body: JSON.stringify({ new: [BAN], deleted: null }) },
    { status: 200, body: JSON.stringify({ new: null, deleted: null }) },
  ]);
  const { logs, until } = bouncerOn(t, lapi.url);
  // a poll starts only after the one before it ended (and logged)
  await until(() => lapi.asked() >= 8, "eight polls");
  const url = lapi.url;
  assert.deepEqual(logs.slice(0, 4), [
    "crowdsec: set cs: +1 -0 decisions, 1 entries",
    `crowdsec: set cs: polling ${url} failed (HTTP 500); the entries stay`,
    `crowdsec: set cs: polling ${url} failed (HTTP 503); the entries stay`,
    `crowdsec: set cs: polling ${url} works again (5 polls failed)`,
  ]);
});

test("a local API that is down: the log names what the connection met", async (t) => {
  const port = await freePort(); // nothing listens there
  const { logs, until } = bouncerOn(t, `http://127.0.0.1:${port}`);
  await until(() => logs.length >= 1, "a failed poll");
  assert.equal(
    logs[0],
    `crowdsec: set cs: polling http://127.0.0.1:${port} failed (fetch failed: connect ECONNREFUSED 127.0.0.1:${port}); the entries stay`,
  );
});

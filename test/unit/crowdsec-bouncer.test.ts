// The CrowdSec bouncer against a local API speaking /v1/decisions/stream: the first poll asks
// for every decision (startup=true) and replaces the set, later ones apply what changed; only
// bans on an Ip or a Range are taken, each expiring with its decision; the bouncer key is sent.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { AddressInfo } from "node:net";
import { decisionChanges, goDurationMs, startCrowdsec } from "../../src/daemon/crowdsec.ts";
import { crowdsecModel } from "../helpers/crowdsec-model.ts";

test("Go durations as the local API writes them", () => {
  assert.equal(goDurationMs("3h59m58.5s"), 3 * 3_600_000 + 59 * 60_000 + 58_500);
  assert.equal(goDurationMs("150ms"), 150);
  assert.equal(goDurationMs("-2s"), -2000);
  assert.equal(goDurationMs("4 hours"), null);
});

test("decisions: bans on an Ip or a Range taken, the rest skipped", () => {
  const got = decisionChanges(
    {
      new: [
        { value: "203.0.113.9", scope: "Ip", type: "ban", duration: "1h" },
        { value: "198.51.100.0/24", scope: "Range", type: "ban", duration: "30m" },
        { value: "192.0.2.1", scope: "Ip", type: "captcha", duration: "1h" },
        { value: "FR", scope: "Country", type: "ban", duration: "1h" },
        { value: "192.0.2.2", scope: "Ip", type: "ban", duration: "-1s" },
      ],
      deleted: [{ value: "192.0.2.9", scope: "Ip", type: "ban", duration: "0s" }],
    },
    1000,
  );
  assert.deepEqual(got, {
    adds: [
      { entry: "203.0.113.9", expires: 1000 + 3_600_000 },
      { entry: "198.51.100.0/24", expires: 1000 + 1_800_000 },
    ],
    dels: ["192.0.2.9"],
    skipped: 2,
  });
  assert.deepEqual(decisionChanges({ new: null, deleted: null }, 0), {
    adds: [],
    dels: [],
    skipped: 0,
  });
});

test("the bouncer polls the local API with its key: startup first, then changes", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "moat-cs-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const keyFile = join(dir, "key");
  writeFileSync(keyFile, "s3cret\n", { mode: 0o600 });
  const asked: { startup: string | null; key: unknown }[] = [];
  const answers = [
    { new: [{ value: "203.0.113.9", scope: "Ip", type: "ban", duration: "1h" }], deleted: [] },
    { new: [], deleted: [{ value: "203.0.113.9", scope: "Ip", type: "ban", duration: "0s" }] },
  ];
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://x");
    if (url.pathname !== "/v1/decisions/stream") return void res.writeHead(404).end();
    asked.push({ startup: url.searchParams.get("startup"), key: req.headers["x-api-key"] });
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify(answers[asked.length - 1] ?? { new: null, deleted: null }));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  t.after(() => server.close());
  const port = (server.address() as AddressInfo).port;
  const model = crowdsecModel(`http://127.0.0.1:${port}`, keyFile);
  const bulks: { name: string; adds: string[]; dels: string[]; replace: boolean }[] = [];
  const bouncer = startCrowdsec({
    model: () => model,
    sets: {
      bulk: (name, change) => {
        bulks.push({
          name,
          adds: change.adds.map((a) => a.entry),
          dels: change.dels,
          replace: change.replace,
        });
        return Promise.resolve({ entries: 0, dropped: 0 });
      },
    },
    log: () => {},
  });
  t.after(() => bouncer.close());
  bouncer.applied();
  const end = Date.now() + 10_000;
  while (bulks.length < 2 && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
  assert.deepEqual(asked.slice(0, 2), [
    { startup: "true", key: "s3cret" },
    { startup: "false", key: "s3cret" },
  ]);
  assert.deepEqual(bulks.slice(0, 2), [
    { name: "cs", adds: ["203.0.113.9"], dels: [], replace: true },
    { name: "cs", adds: [], dels: ["203.0.113.9"], replace: false },
  ]);
});

test("a bouncer key others can read is refused, and so is a reply over its limit; the entries stay", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "moat-cs-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const keyFile = join(dir, "key");
  writeFileSync(keyFile, "s3cret\n", { mode: 0o644 });
  let big = false;
  const server = createServer((_req, res) => {
    res.writeHead(200, { "content-type": "application/json" });
    res.end(
      big ? `{"new":[${'"x",'.repeat(3_000_000)}"x"],"deleted":[]}` : '{"new":[],"deleted":[]}',
    );
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  t.after(() => server.close());
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const model = crowdsecModel(url, keyFile);
  const logs: string[] = [];
  let bulks = 0;
  const bouncer = startCrowdsec({
    model: () => model,
    sets: {
      bulk: () => {
        bulks++;
        return Promise.resolve({ entries: 0, dropped: 0 });
      },
    },
    log: (line) => logs.push(line),
    maxReplyBytes: 1 << 20,
  });
  t.after(() => bouncer.close());
  bouncer.applied();
  const until = async (n: number) => {
    const end = Date.now() + 10_000;
    while (logs.length < n && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
  };
  await until(1);
  assert.match(
    logs[0] ?? "",
    /^crowdsec: set cs: polling http:\S+ failed \(secret file \S+ is readable or writable by others \(mode 644\); chmod 600 it\); the entries stay$/,
  );
  chmodSync(keyFile, 0o600);
  big = true;
  await until(2);
  assert.match(logs[1] ?? "", /failed \(the body is over 1048576 bytes\); the entries stay$/);
  assert.equal(bulks, 0);
});

test("a reply nested deeper than a decision stream is refused before it is parsed", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "moat-cs-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const keyFile = join(dir, "key");
  writeFileSync(keyFile, "s3cret\n", { mode: 0o600 });
  const server = createServer((_req, res) => {
    res.writeHead(200, { "content-type": "application/json" });
    res.end(`${"[".repeat(100_000)}${"]".repeat(100_000)}`);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  t.after(() => server.close());
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const logs: string[] = [];
  const bouncer = startCrowdsec({
    model: () => crowdsecModel(url, keyFile),
    sets: { bulk: () => Promise.resolve({ entries: 0, dropped: 0 }) },
    log: (line) => logs.push(line),
  });
  t.after(() => bouncer.close());
  bouncer.applied();
  const end = Date.now() + 10_000;
  while (logs.length < 1 && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
  assert.match(
    logs[0] ?? "",
    /^crowdsec: set cs: polling http:\S+ failed \(the reply nests deeper than 8 levels, unlike a decision stream\); the entries stay$/,
  );
});

// `moat set add|del` as a user runs them, against the API and the dynamic sets of a daemon: an
// entry is found again in any form of the same addresses (case, zeros, a /32), a CIDR with host
// bits is taken as its network and an IPv4-mapped address as the IPv4 address it carries, each
// said in the answer, and a refusal says what is wrong once, with the entry escaped.
import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startApi } from "../../src/api/server.ts";
import { EventPipeline } from "../../src/observe/pipeline.ts";
import { dynamicSets } from "../../src/daemon/dynamic-sets.ts";
import type { SetView } from "../../src/api/index.ts";
import { http } from "../helpers/api-client.ts";
import { testControl } from "../helpers/api-control.ts";
import { MOAT } from "../helpers/paths.ts";
import { dynamicSet, setsModel } from "../helpers/set-models.ts";

const model = setsModel([dynamicSet("banned")]);

interface Run {
  status: number;
  stdout: string;
  stderr: string;
}

/** A daemon's API over a unix socket with dynamic set `banned`; runs `moat ARGS` against it. */
async function setDaemon(t: TestContext) {
  const dir = mkdtempSync(join(tmpdir(), `moat-set-forms-${process.pid}-`));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const sets = dynamicSets({
    dir,
    model: () => model,
    refresh: () => Promise.resolve(),
    generation: () => 3,
    audit: () => {},
    log: () => {},
  });
  t.after(() => sets.close());
  const pipeline = new EventPipeline();
  const socketPath = join(dir, "api.sock");
  const api = await startApi(
    testControl(pipeline, {
      sets: () => sets.list(),
      changeSet: (change, who) => sets.change(change, who),
    }),
    [{ listen: `unix:${socketPath}` }],
  );
  t.after(async () => {
    await api.close();
    await pipeline.close();
  });
  const moat = (...args: string[]): Promise<Run> =>
    new Promise((resolve) => {
      execFile(MOAT, [...args, "--api", `unix:${socketPath}`], (err, stdout, stderr) => {
        const code = (err as { code?: unknown } | null)?.code;
        resolve({ status: typeof code === "number" ? code : 0, stdout, stderr });
      });
    });
  const entries = async (): Promise<string[]> => {
    const r = await moat("set", "list", "banned", "--json");
    assert.equal(r.status, 0, r.stderr);
    const [set] = (JSON.parse(r.stdout) as { sets: SetView[] }).sets;
    return (set?.entries ?? []).map((e) => e.entry);
  };
  return { moat, entries, socketPath };
}

test("moat set del finds the entry in any form of the same address and prefix", async (t) => {
  const { moat, entries } = await setDaemon(t);
  for (const other of ["2001:DB8::1", "2001:db8:0::1"]) {
    assert.equal((await moat("set", "add", "banned", "2001:db8::1")).status, 0);
    const del = await moat("set", "del", "banned", other);
    assert.equal(del.status, 0, `del ${other} after add 2001:db8::1: ${del.stderr}`);
    assert.deepEqual(await entries(), []);
  }
  assert.equal((await moat("set", "add", "banned", "203.0.113.9/32")).status, 0);
  // the same address added again in another form is the entry already there, not a second one
  assert.equal((await moat("set", "add", "banned", "203.0.113.9")).status, 0);
  assert.deepEqual((await entries()).length, 1);
  const del = await moat("set", "del", "banned", "203.0.113.9/32");
  assert.equal(del.status, 0, del.stderr);
  assert.deepEqual(await entries(), []);
});

test("moat set add takes a CIDR with host bits as its network and says so", async (t) => {
  const { moat, entries } = await setDaemon(t);
  const r = await moat("set", "add", "banned", "10.231.31.77/24");
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^set banned: added 10\.231\.31\.0\/24 \(1 entries, generation 3\)$/m);
  assert.match(r.stderr, /'10\.231\.31\.77\/24' has host bits set: it means 10\.231\.31\.0\/24/);
  assert.deepEqual(await entries(), ["10.231.31.0/24"]);
  assert.equal((await moat("set", "del", "banned", "10.231.31.77/24")).status, 0);
  assert.deepEqual(await entries(), []);
});

test("moat set add takes an IPv4-mapped address as the IPv4 address it carries and says so", async (t) => {
  const { moat, entries } = await setDaemon(t);
  const r = await moat("set", "add", "banned", "::ffff:10.231.191.1");
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^set banned: added 10\.231\.191\.1 \(1 entries, generation 3\)$/m);
  assert.match(r.stderr, /'::ffff:10\.231\.191\.1' is IPv4-mapped.*10\.231\.191\.1/);
  assert.deepEqual(await entries(), ["10.231.191.1"]);
  assert.equal((await moat("set", "del", "banned", "::ffff:10.231.191.1")).status, 0);
  assert.deepEqual(await entries(), []);
});

test("a refused change says what is wrong: the timeout, the entry quoted once and escaped", async (t) => {
  const { moat, socketPath } = await setDaemon(t);
  const zero = await moat("set", "add", "banned", "192.0.2.1", "--timeout", "0");
  assert.notEqual(zero.status, 0);
  assert.match(zero.stderr, /timeout .*must be .*positive/);
  const api = await http(
    { socketPath },
    "POST",
    "/v1/sets/add",
    JSON.stringify({ set: "banned", entry: "192.0.2.1", timeout: 0 }),
  );
  assert.equal(api.status, 400);
  assert.match(api.body, /timeout must be a positive whole number of seconds/);

  const bad = await moat("set", "add", "banned", "a\nb");
  assert.notEqual(bad.status, 0);
  assert.equal(bad.stderr.trim().split("\n").length, 1, `one line: ${bad.stderr}`);
  assert.equal(bad.stderr.split("a\\nb").length - 1, 1, `the entry once: ${bad.stderr}`);
});

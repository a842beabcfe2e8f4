// A reload of a large policy file (10k rules, 1.4 MB) is accepted on a worker thread: the API keeps
// answering GET /v1/status while it runs. A large file with an error is refused with the error at
// FILE:LINE:COL, and the running policy stays. Nothing here is timed: the status answers that
// arrive before the reload settles are counted (an acceptance that held the loop lets none through).
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startApi } from "../../src/api/server.ts";
import { EventPipeline } from "../../src/observe/pipeline.ts";
import { PolicyLifecycle, readPolicyFile } from "../../src/daemon/policy-lifecycle.ts";
import { stopAcceptWorker } from "../../src/host/index.ts";
import { setTablesAheadEntries } from "../../src/host/accept-off-thread.ts";
import { tableImage, type TableImage } from "../../src/policy/index.ts";
import type { PolicyImage } from "../../src/policy/compile/kernel-image.ts";
import { mixedPolicy } from "../../bench/compile.ts";
import { http } from "../helpers/api-client.ts";
import { testControl } from "../helpers/api-control.ts";

const RULES = 10_000;

async function lab(
  t: { after: (fn: () => void | Promise<void>) => void },
  tablesAhead?: (tables: TableImage) => void,
) {
  const dir = mkdtempSync(join(tmpdir(), `moat-reload-large-${process.pid}-`));
  const path = join(dir, "policy.yaml");
  writeFileSync(path, mixedPolicy(10));
  const applied: PolicyImage[] = [];
  const target = {
    generation: 1,
    apply(image: PolicyImage) {
      applied.push(image);
      return { generation: ++this.generation, ms: 1 };
    },
  };
  const lines: string[] = [];
  const lifecycle = new PolicyLifecycle({
    path,
    initial: await readPolicyFile(path),
    target,
    plumbing: { prepare: () => ({ commit: () => {}, abandon: () => {} }) },
    audit: () => {},
    log: (l) => lines.push(l),
    ...(tablesAhead ? { tablesAhead } : {}),
  });
  const pipeline = new EventPipeline();
  const socketPath = join(dir, "api.sock");
  const api = await startApi(testControl(pipeline), [{ listen: `unix:${socketPath}` }]);
  t.after(async () => {
    await api.close();
    await pipeline.close();
    await stopAcceptWorker();
    rmSync(dir, { recursive: true, force: true });
  });
  return { path, lifecycle, applied, socketPath };
}

/** Asks GET /v1/status over and over until `run` settles; counts the answers meanwhile. */
async function statusAnswersDuring<T>(socketPath: string, run: () => Promise<T>) {
  assert.equal((await http({ socketPath }, "GET", "/v1/status")).status, 200);
  let settled = false;
  let answers = 0;
  const asking = (async () => {
    while (!settled) {
      assert.equal((await http({ socketPath }, "GET", "/v1/status")).status, 200);
      if (!settled) answers++;
    }
  })();
  const result = await run();
  settled = true;
  await asking;
  return { result, answers };
}

test("the API answers status while a 10k-rule policy file is reloaded", async (t) => {
  const h = await lab(t);
  writeFileSync(h.path, mixedPolicy(RULES));
  const { result, answers } = await statusAnswersDuring(h.socketPath, () =>
    h.lifecycle.reload("SIGHUP"),
  );
  assert.deepEqual(result, { ok: true, generation: 2, errors: [] });
  assert.equal(h.lifecycle.active.model.rules.length, RULES);
  assert.equal(h.applied.length, 1);
  // its text is kept deflated once in place (a few turns later): read back as the file holds it
  await new Promise((r) => setTimeout(r, 200));
  assert.equal(h.lifecycle.active.text, readFileSync(h.path, "utf8"));
  assert.ok(answers >= 10, `status answered ${answers} times while the reload ran`);
  t.diagnostic(`status answered ${answers} times during the reload`);
});

test("a large policy file with an error is refused at FILE:LINE:COL; the running policy stays", async (t) => {
  const h = await lab(t);
  const lines = mixedPolicy(RULES).split("\n");
  // rule k's lines are 6 + 5k .. 10 + 5k (1-based); its layer4 line is the last
  const k = 7_500;
  const line = 10 + 5 * k;
  lines[line - 1] = "    layer4: { protocol: tcp, port: [70000] }";
  writeFileSync(h.path, lines.join("\n"));
  const result = await h.lifecycle.reload("SIGHUP");
  assert.equal(result.ok, false);
  assert.equal(result.generation, 1);
  assert.match(
    result.errors[0] ?? "",
    new RegExp(`^${h.path}:${line}:37 rules\\[${k}\\]\\.layer4\\.port\\[0\\]: `),
  );
  assert.equal(result.errors.length, 1, result.errors.join("\n"));
  assert.equal(h.lifecycle.active.model.rules.length, 10);
  assert.equal(h.applied.length, 0);

  // broken YAML (a smaller file): read again by the yaml library for its message
  const small = mixedPolicy(2000).split("\n");
  small[10 + 5 * 1500 - 1] = "    layer4: { protocol: tcp, port: [22 }";
  writeFileSync(h.path, small.join("\n"));
  const syntax = await h.lifecycle.reload("SIGHUP");
  assert.equal(syntax.ok, false);
  assert.match(syntax.errors[0] ?? "", new RegExp(`^${h.path}:${10 + 5 * 1500}:\\d+ \\(yaml\\): `));
  assert.equal(h.lifecycle.active.model.rules.length, 10);
});

test("a reload hands a big policy's packet tables to be made before the rest of it comes", async (t) => {
  const ahead: { tables: TableImage; appliedBefore: number }[] = [];
  const h = await lab(t, (tables) => ahead.push({ tables, appliedBefore: h.applied.length }));
  setTablesAheadEntries(135_000); // 2,000 mixed rules' tables hold ~140,000 entries
  t.after(() => setTablesAheadEntries(undefined));
  writeFileSync(h.path, mixedPolicy(2000));
  assert.deepEqual(await h.lifecycle.reload("SIGHUP"), { ok: true, generation: 2, errors: [] });
  assert.equal(ahead.length, 1);
  assert.equal(ahead[0]?.appliedBefore, 0, "made ahead of the apply");
  assert.deepEqual(ahead[0]?.tables, tableImage(h.applied[0]!.packet));
  // a refused policy hands none
  writeFileSync(h.path, "version: 1\nrules: 3\n");
  assert.equal((await h.lifecycle.reload("SIGHUP")).ok, false);
  assert.equal(ahead.length, 1);
});

// Policy and set files are read off the event loop: while the daemon reads a set file of tens of
// megabytes (at start, on a reload, for an API apply or validate), its API keeps answering
// GET /v1/status. Nothing here is timed: the status answers that arrive while the read runs are
// counted (a read that holds the loop lets none through). The asynchronous read gives exactly the
// diagnostics of the synchronous one (`moat check` and the test harness), FIFO set file included.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startApi } from "../../src/api/server.ts";
import { EventPipeline } from "../../src/observe/pipeline.ts";
import { readPolicyFile } from "../../src/daemon/policy-lifecycle.ts";
import { validatePolicyText } from "../../src/daemon/policy-text.ts";
import { acceptPolicyFile, acceptPolicyFileAsync } from "../../src/host/accept-policy.ts";
import { formatDiagnostic } from "../../src/config/index.ts";
import { http } from "../helpers/api-client.ts";
import { testControl } from "../helpers/api-control.ts";

/** Just under the set-file limit (64 MiB): mostly comment lines, so parsing it is quick. */
const SET_FILE_MB = 60;

function bigSetFile(path: string): void {
  const comment = `#${"x".repeat(2 ** 20 - 2)}\n`;
  const lines = ["192.0.2.0/24", "198.51.100.7"];
  writeFileSync(path, lines.join("\n") + "\n" + comment.repeat(SET_FILE_MB));
}

const policyText = (setFile: string) => `version: 1
mode: prevent
defaults: { ingress: block, egress: allow }
attach: { interfaces: [lo] }
sets:
  big: { file: ${setFile} }
rules:
  - name: from-big
    direction: ingress
    action: allow
    layer3: { remote: [set:big] }
    layer4: { protocol: tcp, port: [22] }
`;

function lab(t: { after: (fn: () => void | Promise<void>) => void }) {
  const dir = mkdtempSync(join(tmpdir(), `moat-offloop-${process.pid}-`));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Asks GET /v1/status over and over until `done` settles; returns how many answers came meanwhile. */
async function statusAnswersDuring<T>(
  socketPath: string,
  run: () => T | Promise<T>,
): Promise<{ result: T; answers: number }> {
  // one answer first: the API is up and the client is warm
  assert.equal((await http({ socketPath }, "GET", "/v1/status")).status, 200);
  let settled = false;
  let answers = 0;
  const asking = (async () => {
    while (!settled) {
      const reply = await http({ socketPath }, "GET", "/v1/status");
      assert.equal(reply.status, 200);
      if (!settled) answers++;
    }
  })();
  // the run starts now (a synchronous read would hold the loop right here)
  const result = await run();
  settled = true;
  await asking;
  return { result, answers };
}

test("the API answers status while the daemon reads a 60 MiB set file", async (t) => {
  const dir = lab(t);
  const setFile = join(dir, "big.txt");
  bigSetFile(setFile);
  const policyPath = join(dir, "policy.yaml");
  writeFileSync(policyPath, policyText(setFile));
  const pipeline = new EventPipeline();
  const socketPath = join(dir, "api.sock");
  const api = await startApi(testControl(pipeline), [{ listen: `unix:${socketPath}` }]);
  t.after(async () => {
    await api.close();
    await pipeline.close();
  });

  const start = await statusAnswersDuring(socketPath, () => readPolicyFile(policyPath));
  assert.deepEqual(
    start.result.model.sets.get("big")?.entries.map((e) => e.text),
    ["192.0.2.0/24", "198.51.100.7"],
  );
  assert.ok(
    start.answers >= 10,
    `status answered ${start.answers} times while the policy file and its set file were read`,
  );

  const validate = await statusAnswersDuring(socketPath, () =>
    validatePolicyText(policyText(setFile), policyPath),
  );
  assert.equal(validate.result.ok, true, validate.result.errors.join("\n"));
  assert.ok(
    validate.answers >= 10,
    `status answered ${validate.answers} times while a validated policy's set file was read`,
  );
  t.diagnostic(`status answered ${start.answers} times at start, ${validate.answers} in validate`);
});

test("reading off the loop gives the diagnostics `moat check` and the harness give", async (t) => {
  const dir = lab(t);
  const cases: Record<string, (setFile: string) => void> = {
    good: (p) => writeFileSync(p, "192.0.2.1\n"),
    "bad entry": (p) => writeFileSync(p, "192.0.2.1\nnot-an-address\n"),
    missing: () => {},
    fifo: (p) => execFileSync("mkfifo", [p]),
    "too large": (p) => writeFileSync(p, "#".repeat(64 * 2 ** 20 + 1)),
  };
  for (const [name, make] of Object.entries(cases)) {
    const setFile = join(dir, `${name.replace(" ", "-")}.txt`);
    make(setFile);
    const policyPath = join(dir, `${name.replace(" ", "-")}.yaml`);
    writeFileSync(policyPath, policyText(setFile));
    const sync = acceptPolicyFile(policyPath).diagnostics.map(formatDiagnostic);
    const async = (await acceptPolicyFileAsync(policyPath)).diagnostics.map(formatDiagnostic);
    assert.deepEqual(async, sync, name);
    if (name !== "good") assert.ok(sync.length > 0, `${name}: ${sync.join("; ")}`);
  }
});

test("the built-in set doh-resolvers is read off the loop too", async (t) => {
  const dir = lab(t);
  const policyPath = join(dir, "doh.yaml");
  writeFileSync(
    policyPath,
    `version: 1
mode: prevent
defaults: { ingress: block, egress: allow }
attach: { cgroup: "/" }
rules:
  - name: no-doh
    direction: egress
    action: block
    layer3: { remote: [set:doh-resolvers] }
    layer4: { protocol: tcp, port: [443] }
`,
  );
  const sync = acceptPolicyFile(policyPath);
  const async = await acceptPolicyFileAsync(policyPath);
  assert.deepEqual(async.diagnostics.map(formatDiagnostic), sync.diagnostics.map(formatDiagnostic));
  const errors = async.diagnostics.filter((d) => d.severity === "error").map(formatDiagnostic);
  assert.deepEqual(errors, [], "moat's shipped list is there for every reader");
  assert.ok((async.policy?.model.sets.get("doh-resolvers")?.entries.length ?? 0) > 0);
});

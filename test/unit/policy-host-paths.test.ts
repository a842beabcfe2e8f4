// What a policy asks of this host's filesystem, refused where `moat check`, POST
// /v1/policy/validate and the daemon's start, reload and PUT all accept policies (one function,
// src/host/accept-policy.ts), at the line and column of the key: an attach.cgroup that is not in
// the cgroup v2 hierarchy, an audit log under a pseudo filesystem (/proc, /sys) or below a file.
// A directory missing on the way to the audit log is fine (moat creates it). The text-only check
// (the browser playground) says nothing of this host.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { formatDiagnostic, textOnlyHost } from "../../src/config/index.ts";
import { acceptPolicyFile } from "../../src/host/index.ts";
import { findCgroup2Mount } from "../../src/attribution/index.ts";
import { acceptPolicyText } from "../../src/policy/index.ts";
import { startApi } from "../../src/api/server.ts";
import { EventPipeline } from "../../src/observe/pipeline.ts";
import { validatePolicyText } from "../../src/daemon/policy-text.ts";
import { testControl } from "../helpers/api-control.ts";
import { http } from "../helpers/api-client.ts";

const suffix = `${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
const MISSING_CGROUP = `/no-such-cgroup-${suffix}`;

const policy = (lines: string) => `version: 1\nmode: detect\n${lines}\n`;

function tempDir(t: { after: (fn: () => void) => void }): string {
  const dir = mkdtempSync(join(tmpdir(), "moat-host-paths-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** `moat check FILE`: the file accepted as the daemon accepts it; its error lines. */
function check(dir: string, text: string): string[] {
  const file = join(dir, "policy.yaml");
  writeFileSync(file, text, { mode: 0o600 });
  return acceptPolicyFile(file)
    .diagnostics.filter((d) => d.severity === "error")
    .map((d) => formatDiagnostic(d).replace(file, "policy.yaml"));
}

test("an attach.cgroup that does not exist is an error at its key", (t) => {
  const dir = tempDir(t);
  const errors = check(dir, policy(`attach: { cgroup: ${MISSING_CGROUP} }`));
  assert.equal(errors.length, 1, errors.join("\n"));
  assert.match(
    errors[0] ?? "",
    new RegExp(`^policy\\.yaml:3:19 attach\\.cgroup: .*${MISSING_CGROUP} does not exist`),
  );
  assert.deepEqual(check(dir, policy("attach: { cgroup: / }")), []);
});

test("an attach.cgroup written as the full path of a cgroup is refused with the path to write", (t) => {
  const dir = tempDir(t);
  const mount = findCgroup2Mount()?.mountPoint;
  assert.ok(mount, "a cgroup v2 hierarchy");
  const errors = check(dir, policy(`attach: { cgroup: ${mount} }`));
  assert.equal(errors.length, 1, errors.join("\n"));
  assert.equal(
    errors[0],
    `policy.yaml:3:19 attach.cgroup: attach.cgroup ${mount}: a path inside the cgroup v2 hierarchy (mounted at ${mount}) is meant: write /`,
  );
});

test("an audit log under /proc or /sys, or below a file, is an error at its key", (t) => {
  const dir = tempDir(t);
  const file = join(dir, "plain-file");
  writeFileSync(file, "x", { mode: 0o600 });
  const refused: [string, RegExp][] = [
    [`/proc/moat-${suffix}/audit.log`, /\/proc.*pseudo filesystem/],
    [`/proc/audit-${suffix}.log`, /\/proc.*pseudo filesystem/],
    [`/sys/kernel/moat-${suffix}/audit.log`, /\/sys.*pseudo filesystem/],
    [`${file}/logs/audit.log`, /plain-file is not a directory/],
  ];
  for (const [path, reason] of refused) {
    const errors = check(dir, policy(`logging:\n  audit: { path: ${path} }`));
    assert.equal(errors.length, 1, `${path}: ${errors.join("\n")}`);
    assert.match(errors[0] ?? "", /^policy\.yaml:4:\d+ logging\.audit: audit log /, path);
    assert.match(errors[0] ?? "", reason, path);
  }
  // moat creates the directories missing on the way
  assert.deepEqual(check(dir, policy(`logging:\n  audit: { path: ${dir}/new/sub/audit.log }`)), []);
});

test("POST /v1/policy/validate refuses them as apply would, with their positions", async (t) => {
  const pipeline = new EventPipeline();
  const control = testControl(pipeline, {
    validate: (text) => validatePolicyText(text, "/p.yaml"),
  });
  const socketPath = join(tempDir(t), "api.sock");
  const api = await startApi(control, [{ listen: `unix:${socketPath}` }]);
  t.after(async () => {
    await api.close();
    await pipeline.close();
  });
  const text = policy(
    `attach: { cgroup: ${MISSING_CGROUP} }\nlogging:\n  audit: { path: /proc/moat-${suffix}/audit.log }`,
  );
  const r = await http({ socketPath }, "POST", "/v1/policy/validate", text);
  const body = JSON.parse(r.body) as { ok: boolean; errors: string[] };
  assert.equal(body.ok, false, r.body);
  assert.equal(body.errors.length, 2, r.body);
  assert.match(body.errors[0] ?? "", /^\/p\.yaml:3:19 attach\.cgroup: .* does not exist/);
  assert.match(body.errors[1] ?? "", /^\/p\.yaml:5:\d+ logging\.audit: .*pseudo filesystem/);
});

test("the text-only check (the playground) says nothing of this host's cgroups or files", () => {
  const text = policy(
    `attach: { cgroup: ${MISSING_CGROUP} }\nlogging:\n  audit: { path: /proc/moat-${suffix}/audit.log }`,
  );
  const accepted = acceptPolicyText(text, "p.yaml", { host: textOnlyHost });
  assert.deepEqual(accepted.diagnostics.map(formatDiagnostic), []);
  assert.ok(accepted.policy);
});

// `make run`, `moat mode` and `moat policy apply` never rewrite a file of the source tree: make
// run installs the example under /etc/moat and runs that copy; the daemon does not save over a
// policy inside a git work tree. The bundled default policy detects unknown connections.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { writePolicyFile } from "../../src/daemon/policy-text.ts";
import { acceptPolicyFile } from "../../src/host/accept-policy.ts";
import { evaluate } from "../../src/policy/evaluator.ts";
import { ROOT } from "../helpers/paths.ts";

test("make run installs the policy under the run directory and runs that copy", () => {
  const r = spawnSync("make", ["-n", "run", "RUN_DIR=/tmp/moat-run-test"], {
    cwd: ROOT,
    encoding: "utf8",
  });
  assert.equal(r.status, 0, r.stderr);
  const lines = r.stdout.split("\n");
  assert.ok(
    lines.some((l) =>
      /install .*-m 0600 examples\/default\.yaml \/tmp\/moat-run-test\/default\.yaml/.test(l),
    ),
    r.stdout,
  );
  assert.ok(
    lines.some((l) => l.endsWith("run --policy /tmp/moat-run-test/default.yaml")),
    r.stdout,
  );
  assert.ok(!lines.some((l) => /run --policy examples\//.test(l)), r.stdout);
});

test("the daemon never saves a policy over a file inside a git work tree", (t) => {
  const dir = mkdtempSync(join(tmpdir(), "moat-tree-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  mkdirSync(join(dir, ".git"));
  mkdirSync(join(dir, "examples"));
  const path = join(dir, "examples", "default.yaml");
  writeFileSync(path, "version: 1\nmode: detect\n");
  assert.throws(
    () => writePolicyFile(path, "version: 1\nmode: prevent\n"),
    /is inside the source tree .* \(it has \.git\); run moat with a copy/,
  );
  assert.equal(readFileSync(path, "utf8"), "version: 1\nmode: detect\n");
});

test("the default policy detects unknown connections in both directions, with process attribution", () => {
  const { policy, diagnostics } = acceptPolicyFile(join(ROOT, "examples/default.yaml"));
  assert.ok(policy, diagnostics.map((d) => d.message).join("\n"));
  const { model } = policy;
  assert.equal(model.mode, "detect");
  assert.equal(model.attach.cgroup?.value, "/");
  const facts = (direction: "ingress" | "egress", port: number) => ({
    direction,
    protocol: "tcp" as const,
    family: 4 as const,
    local: { ip: "10.0.0.1", port: direction === "ingress" ? port : 40000 },
    remote: { ip: "198.51.100.7", port: direction === "ingress" ? 40000 : port },
  });
  for (const direction of ["ingress", "egress"] as const) {
    const e = evaluate(model, facts(direction, 8443));
    assert.equal(e.rule, "default");
    assert.equal(e.verdict, "detected", `${direction}: ${JSON.stringify(e.verdict)}`);
  }
});

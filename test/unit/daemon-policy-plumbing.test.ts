// What a policy configures besides the datapath, with the real pipeline, audit sink and policy
// sinks: a policy whose audit path is unsafe (a symlink) is refused before anything moves; a good
// one moves the audit log and the watched files only when committed; a change to what is read
// once at start (api, logging.history) is noted, not applied.
import { test } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parsePolicy } from "../../src/config/index.ts";
import { auditSink, EventPipeline } from "../../src/observe/index.ts";
import { policyPlumbing } from "../../src/daemon/policy-plumbing.ts";

const policy = (audit: string, extra = "") =>
  parsePolicy(
    `version: 1
mode: prevent
defaults: { ingress: block, egress: allow }
logging: { audit: { path: ${audit} } }
${extra}rules: []
`,
    "policy.yaml",
  );

function harness(t: { after: (fn: () => Promise<void> | void) => void }) {
  const dir = mkdtempSync(join(tmpdir(), `moat-plumbing-${process.pid}-`));
  const pipeline = new EventPipeline();
  const audit = auditSink();
  const watched: string[][] = [];
  const lines: string[] = [];
  t.after(async () => {
    await pipeline.close();
    audit.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const first = policy(join(dir, "first.log"));
  audit.setPath(join(dir, "first.log"));
  const plumbing = policyPlumbing(first, {
    policyPath: join(dir, "policy.yaml"),
    pipeline,
    audit,
    snapshot: () => {
      throw new Error("no snapshot in this test");
    },
    watch: { set: (paths) => watched.push(paths) },
    log: (l) => lines.push(l),
  });
  return { dir, first, audit, plumbing, watched, lines };
}

test("an unsafe audit path refuses the policy; the audit log stays where it was", (t) => {
  const h = harness(t);
  // a directory anyone can write: someone else could swap the log for a link to another file
  const open = join(h.dir, "open");
  mkdirSync(open);
  chmodSync(open, 0o777);
  assert.throws(
    () => h.plumbing.prepare(policy(join(open, "audit.log")), h.first),
    /audit log .*audit\.log: directory .*open is writable by group or others/,
  );
  assert.equal(h.audit.path, join(h.dir, "first.log"));
});

test("a good policy's audit path and watched files follow it; what is read at start is noted", (t) => {
  const h = harness(t);
  assert.deepEqual(h.watched, [[join(h.dir, "policy.yaml")]]);
  const next = policy(join(h.dir, "second.log"), "api: { listen: unix:/run/moat-other.sock }\n");
  const prepared = h.plumbing.prepare(next, h.first);
  assert.deepEqual(h.lines, ["note: the change to 'api' takes effect when moat restarts"]);
  assert.equal(h.watched.length, 1, "nothing moves before the commit");
  prepared.commit();
  assert.equal(h.audit.path, join(h.dir, "second.log"));
  assert.ok(existsSync(join(h.dir, "second.log")));
  assert.equal(h.watched.length, 2);
});

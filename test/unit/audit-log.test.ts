// The audit log refuses paths others could tamper with, and is created root-only (0600).
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  chmodSync,
  closeSync,
  lchownSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AuditLog } from "../../src/observe/audit-log.ts";
import { auditSink } from "../../src/observe/audit-sink.ts";
import { EventPipeline } from "../../src/observe/pipeline.ts";
import { FLOOD_LIMITS } from "../../src/observe/flood-summary.ts";
import { fakeEvent } from "../helpers/events.ts";

function dir(t: { after: (fn: () => void) => void }): string {
  const d = mkdtempSync(join(tmpdir(), "moat-audit-"));
  t.after(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

test("a new audit log is 0600 and gets one line per event plus policy notes", async (t) => {
  const path = join(dir(t), "log", "audit.log");
  const sink = auditSink();
  sink.setPath(path);
  await sink.write([fakeEvent({ time: "2026-11-22T10:00:00.123Z" })]);
  sink.note("POLICY APPLIED policy by token ops: generation 2");
  sink.close();
  assert.equal(statSync(path).mode & 0o777, 0o600);
  const lines = readFileSync(path, "utf8").trim().split("\n");
  assert.equal(
    lines[0],
    "2026-11-22T10:00:00.123Z BLOCKED ingress tcp 203.0.113.9:51514 -> 10.0.0.1:22 on eth0 by rule default",
  );
  assert.match(
    lines[1] ?? "",
    /^\d{4}-\d\d-\d\dT[\d:.]+Z POLICY APPLIED policy by token ops: generation 2$/,
  );
});

test("a group/world-writable file, a symlink others own, or a writable directory is refused", (t) => {
  const d = dir(t);
  const writable = join(d, "writable.log");
  writeFileSync(writable, "");
  chmodSync(writable, 0o666);
  assert.throws(() => new AuditLog(writable), {
    code: "EAUDITLOG",
    message: `audit log ${writable}: is writable by group or others (mode 0666); chmod go-w it`,
  });

  const target = join(d, "elsewhere.log");
  writeFileSync(target, "", { mode: 0o600 });
  const link = join(d, "link.log");
  symlinkSync(target, link);
  lchownSync(link, 65534, 65534);
  assert.throws(() => new AuditLog(link), {
    code: "EAUDITLOG",
    message: `audit log ${link}: ${link} is a symlink owned by uid 65534, not root; refusing to follow it`,
  });

  const open = join(d, "open");
  mkdirSync(open);
  chmodSync(open, 0o777);
  assert.throws(() => new AuditLog(join(open, "audit.log")), {
    code: "EAUDITLOG",
    message: `audit log ${join(open, "audit.log")}: directory ${open} is writable by group or others (mode 0777); make it 0755 or stricter`,
  });
});

/** Puts /dev/full behind the audit log's descriptor: every later write fails with ENOSPC. */
function fillDisk(path: string): void {
  const fd = readdirSync("/proc/self/fd")
    .map(Number)
    .find((n) => {
      try {
        return readlinkSync(`/proc/self/fd/${n}`) === path;
      } catch {
        return false;
      }
    });
  assert.ok(fd !== undefined, "the audit log is open");
  closeSync(fd);
  const full = openSync("/dev/full", "w"); // the lowest free descriptor: the one just closed
  assert.equal(full, fd);
}

test("a full disk fails the audit log's writes, counted as failed; the daemon keeps running", async (t) => {
  const path = join(dir(t), "audit.log");
  const sink = auditSink();
  sink.setPath(path);
  const pipeline = new EventPipeline();
  pipeline.add(sink);
  pipeline.push(fakeEvent({ connection: "ok" }));
  await pipeline.flush();
  fillDisk(path);

  // a batch: its write() fails and the pipeline counts the failed batch
  for (let i = 0; i < FLOOD_LIMITS.perKey + 1; i++)
    pipeline.push(fakeEvent({ connection: `f${i}` }));
  await pipeline.flush();
  assert.equal(pipeline.stats()[0]?.failed, 1);

  // the flood's summary is written by a timer, outside any batch: counted, not thrown
  await new Promise((r) => setTimeout(r, FLOOD_LIMITS.windowMs * 2 + 200));
  assert.equal(pipeline.stats()[0]?.failed, 2, "the summary line's write");

  // a policy change's note and a notice: counted, not thrown
  sink.note("POLICY APPLIED policy by token ops: generation 2");
  pipeline.notice({
    type: "events_lost",
    time: new Date().toISOString(),
    count: 3,
    intervalMs: 1000,
  });
  assert.equal(pipeline.stats()[0]?.failed, 4);
  await pipeline.close();
  assert.equal(
    readFileSync(path, "utf8").trim().split("\n").length,
    1,
    "the line before the disk filled",
  );
});

test("text in audit lines is escaped: control characters, invisible ones and the backslash", async (t) => {
  const path = join(dir(t), "audit.log");
  const sink = auditSink();
  sink.setPath(path);
  const time = "2026-11-22T10:00:00.000Z";
  const proc = (name: string) => ({
    pid: 7,
    name,
    path: "/x",
    user: 0,
    cgroup: "/",
    container: null,
  });
  await sink.write([
    fakeEvent({ time, connection: "1", process: proc("a\nb") }),
    fakeEvent({
      time,
      connection: "2",
      process: proc("a\\nb"),
      remote: { ip: "203.0.113.10", port: 1 },
    }),
    fakeEvent({
      time,
      connection: "3",
      process: proc("a\u202eb\x1b"),
      remote: { ip: "203.0.113.11", port: 1 },
    }),
  ]);
  sink.close();
  const lines = readFileSync(path, "utf8").trimEnd().split("\n");
  assert.equal(lines.length, 3);
  assert.ok(lines[0]?.endsWith("(a\\nb pid 7)"), lines[0]);
  assert.ok(lines[1]?.endsWith("(a\\\\nb pid 7)"), lines[1]);
  assert.ok(lines[2]?.endsWith("(a\\u202eb\\x1b pid 7)"), lines[2]);
  assert.notEqual(lines[0]?.slice(30), lines[1]?.slice(30), "a newline and a backslash-n differ");
});

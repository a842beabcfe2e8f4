// The audit log refuses paths others could tamper with, and is created root-only (0600).
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  chmodSync,
  lchownSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AuditLog } from "../../src/observe/audit-log.ts";
import { auditSink } from "../../src/observe/audit-sink.ts";
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

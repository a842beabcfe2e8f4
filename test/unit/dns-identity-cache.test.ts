// A DNS client's identity as the proxy asks it per query: for an owner whose executable the kernel
// recorded, the same identity object for a while (made of the owner's own fields, so it is the
// same identity identityOf gives); for one without, /proc is read each time.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, unlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { DnsOwner } from "../../src/dns/index.ts";
import { identityCache, identityOf } from "../../src/dns/identity.ts";

const OWNER: DnsOwner = {
  pid: 812,
  uid: 1000,
  cgroupId: 77n,
  comm: "dnsperf",
  exeIno: 123456n,
  exeDev: 0x800001,
};

test("an owner with its executable recorded: identityOf's identity, the same object for a second", () => {
  let now = 0;
  const identity = identityCache("/nonexistent", () => now);
  const first = identity(OWNER);
  assert.deepEqual(first, identityOf(OWNER));
  assert.equal(identity({ ...OWNER }), first);
  now = 999;
  assert.equal(identity(OWNER), first);
  now = 1001;
  const later = identity(OWNER);
  assert.notEqual(later, first);
  assert.deepEqual(later, first);
});

test("another cgroup, executable or user is another identity", () => {
  const identity = identityCache("/nonexistent", () => 0);
  const first = identity(OWNER);
  for (const other of [
    { ...OWNER, cgroupId: 78n },
    { ...OWNER, exeIno: 1n },
    { ...OWNER, exeDev: 1 },
    { ...OWNER, uid: 0 },
  ]) {
    const got = identity(other);
    assert.notEqual(got, first);
    assert.deepEqual(got, identityOf(other));
  }
  assert.equal(identity(OWNER), first);
});

test("an owner without its executable recorded is read from /proc at every query", () => {
  const root = mkdtempSync(join(tmpdir(), "moat-identity-"));
  try {
    mkdirSync(join(root, "812"));
    const exe = join(root, "812", "exe");
    symlinkSync(process.execPath, exe);
    const identity = identityCache(root, () => 0);
    const owner: DnsOwner = { pid: 812, uid: 1000, cgroupId: 77n, comm: "dnsperf" };
    const first = identity(owner);
    assert.ok(first);
    assert.deepEqual(first, identityOf(owner, root));
    // the process is gone: known at once, not a second later
    unlinkSync(exe);
    assert.equal(identity(owner), null);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

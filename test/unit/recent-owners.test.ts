// recentOwners: an owner's facts are read once for connection after connection, and read again
// when the kernel's owner differs (another program, user or cgroup) or the answer is old.
import { test } from "node:test";
import assert from "node:assert/strict";
import { recentOwners, type KernelOwner } from "../../src/attribution/index.ts";
import type { ProcessFacts } from "../../src/attribution/index.ts";

const owner: KernelOwner = { pid: 42, uid: 1000, cgroupId: 7n, comm: "curl" };

function counting(): { read: (o: KernelOwner) => ProcessFacts; reads: () => number } {
  let n = 0;
  return {
    read: (o) => {
      n++;
      return {
        pid: o.pid,
        name: o.comm,
        path: `/usr/bin/${o.comm}`,
        user: o.uid,
        userName: "u",
        cgroup: "/",
        container: null,
      };
    },
    reads: () => n,
  };
}

test("the same owner again: /proc is read once, each answer a copy", () => {
  const c = counting();
  const facts = recentOwners(c.read);
  const a = facts(owner);
  const b = facts({ ...owner });
  assert.equal(c.reads(), 1);
  assert.deepEqual(a, b);
  assert.notEqual(a, b);
});

test("another program, user or cgroup under the same pid is read again", () => {
  const c = counting();
  const facts = recentOwners(c.read);
  facts(owner);
  assert.equal(facts({ ...owner, comm: "wget" }).name, "wget");
  facts({ ...owner, uid: 0 });
  facts({ ...owner, cgroupId: 8n });
  facts({ ...owner, exeIno: 99n, exeDev: 1 });
  assert.equal(c.reads(), 5);
});

test("an answer older than the ttl is read again", async () => {
  const c = counting();
  const facts = recentOwners(c.read, 20);
  facts(owner);
  await new Promise((r) => setTimeout(r, 40));
  facts(owner);
  assert.equal(c.reads(), 2);
});

// The DNS proxy's process facts of a client: a program asking thousands of queries a second is
// read from /proc once a second, not once a query; another process (pid, executable, cgroup, user
// or name) is looked up on its own; what was looked up is at most a second old.
import { test } from "node:test";
import assert from "node:assert/strict";
import type { ProcessFacts } from "../../src/attribution/index.ts";
import { processFactsCache } from "../../src/dns/process-cache.ts";
import type { DnsOwner } from "../../src/dns/index.ts";

const OWNER: DnsOwner = {
  pid: 812,
  uid: 1000,
  cgroupId: 77n,
  comm: "dnsperf",
  exeIno: 123456n,
  exeDev: 0x800001,
};

function counting() {
  const looked: DnsOwner[] = [];
  let now = 0;
  const facts = (o: DnsOwner): ProcessFacts => {
    looked.push(o);
    return {
      pid: o.pid,
      name: o.comm,
      path: `/bin/${looked.length}`,
      user: o.uid,
      cgroup: "/",
      container: null,
    };
  };
  const cache = processFactsCache(facts, { now: () => now, maxAgeMs: 1000 });
  return { looked, cache, advance: (ms: number) => (now += ms) };
}

test("one process asking many queries is looked up once while its facts are fresh", () => {
  const { looked, cache, advance } = counting();
  const first = cache(OWNER);
  for (let i = 0; i < 1000; i++) assert.deepEqual(cache({ ...OWNER }), first);
  advance(999);
  assert.deepEqual(cache(OWNER), first);
  assert.equal(looked.length, 1);
});

test("facts older than the limit are looked up again", () => {
  const { looked, cache, advance } = counting();
  const first = cache(OWNER);
  advance(1001);
  const second = cache(OWNER);
  assert.equal(looked.length, 2);
  assert.notDeepEqual(second, first);
});

test("another pid, executable, cgroup, user or name is another process", () => {
  const { looked, cache } = counting();
  cache(OWNER);
  const others: DnsOwner[] = [
    { ...OWNER, pid: 813 },
    { ...OWNER, exeIno: 654321n },
    { ...OWNER, exeDev: 0x800002 },
    { ...OWNER, cgroupId: 78n },
    { ...OWNER, uid: 0 },
    { ...OWNER, comm: "curl" },
  ];
  for (const o of others) assert.equal(cache(o).pid, o.pid);
  assert.equal(looked.length, 1 + others.length);
  for (const o of [OWNER, ...others]) cache(o);
  assert.equal(looked.length, 1 + others.length);
});

test("the cache holds a bounded number of processes", () => {
  const { looked, cache } = counting();
  for (let pid = 1; pid <= 10_000; pid++) cache({ ...OWNER, pid });
  assert.equal(looked.length, 10_000);
  cache({ ...OWNER, pid: 1 }); // long evicted
  assert.equal(looked.length, 10_001);
});

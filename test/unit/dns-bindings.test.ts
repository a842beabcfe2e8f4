// The DNS binding store: names learned per identity and address, merged, living
// max(ttl, min_ttl) + grace, unbound when they expire unless the identity still has a live
// connection to the address; /etc/hosts names shared by every identity; every binding recomputed
// with a new image's classes at a reload.
import { test } from "node:test";
import assert from "node:assert/strict";
import dnsPacket from "dns-packet";
import { readAnswer } from "../../src/dns/answer.ts";
import { BindingStore, NEVER } from "../../src/dns/bindings.ts";
import {
  ZERO_IDENTITY,
  type JournaledName,
  type JournalKey,
  type NameIdentity,
  type NameKey,
} from "../../src/dns/ports.ts";

const S = 1_000_000_000n;
const curl: NameIdentity = { cgroupId: 77n, exeIno: 1234n, exeDev: 0x800001, uid: 1000 };
const wget: NameIdentity = { ...curl, exeIno: 999n };

/** Class 1: github.com; class 2: anything under fastly.net; class 3: both. */
const classesOf = (names: readonly string[]) =>
  (names.includes("github.com") ? 1 : 0) | (names.some((n) => n.endsWith(".fastly.net")) ? 2 : 0);

function store(over: { live?: (k: NameKey) => boolean; minTtl?: number; grace?: number } = {}) {
  const clock = { now: 1000n * S };
  // the names journal as the kernel map would hold it: identity|ip|name -> expiry
  const journal = new Map<string, bigint>();
  const at = (k: JournalKey) => `${k.identity.exeIno}|${k.ip}|${k.name}`;
  const s = new BindingStore({
    now: () => clock.now,
    minTtlSeconds: () => over.minTtl ?? 5,
    graceSeconds: () => over.grace ?? 30,
    ...(over.live ? { liveConnection: over.live } : {}),
    journal: {
      record: (names: JournaledName[]) => {
        for (const n of names) journal.set(at(n), n.expiresNs);
      },
      forget: (keys: JournalKey[]) => {
        for (const k of keys) journal.delete(at(k));
      },
    },
  });
  return { s, clock, journal };
}

test("an answer binds its addresses to the asker with the class of its names and TTL + grace", () => {
  const { s, clock } = store();
  const out = s.learn(
    curl,
    ["github.com"],
    [{ ip: "140.82.112.3", ttlSeconds: 60, ownerIndex: 0 }],
    classesOf,
  );
  assert.deepEqual(out, [
    { identity: curl, ip: "140.82.112.3", nclass: 1, expiresNs: clock.now + 90n * S },
  ]);
  assert.deepEqual(s.namesOf(curl, "140.82.112.3"), ["github.com"]);
  assert.deepEqual(s.namesOf(wget, "140.82.112.3"), [], "another executable learned nothing");
});

test("a TTL under the floor lives min_ttl + grace; names of one address merge", () => {
  const { s, clock } = store({ minTtl: 5, grace: 30 });
  s.learn(curl, ["github.com"], [{ ip: "10.0.0.9", ttlSeconds: 0, ownerIndex: 0 }], classesOf);
  const out = s.learn(
    curl,
    ["cdn.example", "x.fastly.net"],
    [{ ip: "10.0.0.9", ttlSeconds: 1, ownerIndex: 1 }],
    classesOf,
  );
  assert.equal(out.length, 1);
  assert.equal(out[0]?.nclass, 3, "the union of both answers' names");
  assert.equal(out[0]?.expiresNs, clock.now + 35n * S);
  assert.deepEqual(s.namesOf(curl, "10.0.0.9").sort(), [
    "cdn.example",
    "github.com",
    "x.fastly.net",
  ]);
});

test("names no pattern matches (class 0) are kept for events but not written", () => {
  const { s } = store();
  assert.deepEqual(
    s.learn(curl, ["example.org"], [{ ip: "10.0.0.1", ttlSeconds: 60, ownerIndex: 0 }], classesOf),
    [],
  );
  assert.deepEqual(s.namesOf(curl, "10.0.0.1"), ["example.org"]);
});

test("the sweep unbinds what expired, narrows what partly expired, keeps the rest", () => {
  const { s, clock } = store({ minTtl: 0, grace: 0 });
  s.learn(curl, ["github.com"], [{ ip: "10.0.0.1", ttlSeconds: 10, ownerIndex: 0 }], classesOf);
  s.learn(curl, ["a.fastly.net"], [{ ip: "10.0.0.2", ttlSeconds: 10, ownerIndex: 0 }], classesOf);
  s.learn(curl, ["a.fastly.net"], [{ ip: "10.0.0.2", ttlSeconds: 100, ownerIndex: 0 }], classesOf);
  s.learn(curl, ["github.com"], [{ ip: "10.0.0.3", ttlSeconds: 10, ownerIndex: 0 }], classesOf);
  s.learn(curl, ["x.fastly.net"], [{ ip: "10.0.0.3", ttlSeconds: 100, ownerIndex: 0 }], classesOf);
  assert.deepEqual(s.sweep(classesOf), { bind: [], unbind: [] }, "nothing expired yet");
  clock.now += 11n * S;
  const r = s.sweep(classesOf);
  assert.deepEqual(r.unbind, [{ identity: curl, ip: "10.0.0.1" }]);
  assert.deepEqual(
    r.bind.map((b) => [b.ip, b.nclass]),
    [["10.0.0.3", 2]],
    "github.com left 10.0.0.3's names: its class narrows",
  );
  assert.deepEqual(s.namesOf(curl, "10.0.0.1"), []);
  assert.deepEqual(s.namesOf(curl, "10.0.0.2"), ["a.fastly.net"]);
});

test("an expired binding with a live connection of its identity lives another grace period", () => {
  const live = new Set(["10.0.0.1"]);
  const { s, clock } = store({ minTtl: 0, grace: 30, live: (k) => live.has(k.ip) });
  s.learn(curl, ["github.com"], [{ ip: "10.0.0.1", ttlSeconds: 10, ownerIndex: 0 }], classesOf);
  s.learn(curl, ["github.com"], [{ ip: "10.0.0.2", ttlSeconds: 10, ownerIndex: 0 }], classesOf);
  clock.now += 41n * S;
  const r = s.sweep(classesOf);
  assert.deepEqual(r.unbind, [{ identity: curl, ip: "10.0.0.2" }]);
  assert.deepEqual(r.bind, [
    { identity: curl, ip: "10.0.0.1", nclass: 1, expiresNs: clock.now + 30n * S },
  ]);
  live.clear();
  clock.now += 31n * S;
  assert.deepEqual(s.sweep(classesOf).unbind, [{ identity: curl, ip: "10.0.0.1" }]);
});

test("/etc/hosts names hold for every identity and never expire; replacing them unbinds the old", () => {
  const { s, clock } = store();
  const r = s.setShared(
    new Map([
      ["github.com", ["10.9.9.9"]],
      ["localhost", ["127.0.0.1"]],
    ]),
    classesOf,
  );
  assert.deepEqual(r, {
    bind: [{ identity: ZERO_IDENTITY, ip: "10.9.9.9", nclass: 1, expiresNs: NEVER }],
    unbind: [],
  });
  assert.deepEqual(s.namesOf(curl, "10.9.9.9"), ["github.com"], "any identity sees them");
  clock.now += 1_000_000n * S;
  assert.deepEqual(s.sweep(classesOf), { bind: [], unbind: [] });
  const next = s.setShared(new Map([["localhost", ["127.0.0.1"]]]), classesOf);
  assert.deepEqual(next.unbind, [{ identity: ZERO_IDENTITY, ip: "10.9.9.9" }]);
  assert.deepEqual(s.namesOf(curl, "10.9.9.9"), []);
});

test("bindingsFor gives every binding with a new image's classes (for its slot at a reload)", () => {
  const { s } = store();
  s.learn(curl, ["example.org"], [{ ip: "10.0.0.1", ttlSeconds: 60, ownerIndex: 0 }], classesOf);
  s.learn(wget, ["github.com"], [{ ip: "10.0.0.2", ttlSeconds: 60, ownerIndex: 0 }], classesOf);
  const next = (names: readonly string[]) => (names.includes("example.org") ? 7 : 0);
  assert.deepEqual(
    s.bindingsFor(next).map((b) => [b.identity.exeIno, b.ip, b.nclass]),
    [[1234n, "10.0.0.1", 7]],
  );
});

test("addresses compare IPv4-mapped as IPv4, names without case or trailing dot", () => {
  const { s } = store();
  s.learn(
    curl,
    ["GitHub.COM."],
    [{ ip: "::ffff:140.82.112.3", ttlSeconds: 60, ownerIndex: 0 }],
    classesOf,
  );
  assert.deepEqual(s.namesOf(curl, "140.82.112.3"), ["github.com"]);
});

test("a binding about to lapse under a live connection is extended before the kernel sees it expire", () => {
  const { s, clock } = store({ minTtl: 0, grace: 1, live: () => true });
  s.learn(curl, ["github.com"], [{ ip: "10.0.0.1", ttlSeconds: 1, ownerIndex: 0 }], classesOf);
  // expires at 2 s; the next sweep comes after 2 s (horizon): extended now, not after the lapse
  clock.now += 1n * S;
  const r = s.sweep(classesOf, 2n * S);
  assert.deepEqual(r.bind, [
    { identity: curl, ip: "10.0.0.1", nclass: 1, expiresNs: clock.now + 3n * S },
  ]);
  assert.deepEqual(r.unbind, []);
});

test("the journal holds every live name of an identity with its expiry; expired ones leave it", () => {
  const { s, clock, journal } = store({ minTtl: 5, grace: 30 });
  s.learn(
    curl,
    ["cname.example", "x.fastly.net"],
    [{ ip: "10.0.0.9", ttlSeconds: 60, ownerIndex: 1 }],
    classesOf,
  );
  s.learn(curl, ["github.com"], [{ ip: "140.82.112.3", ttlSeconds: 0, ownerIndex: 0 }], classesOf);
  s.setShared(new Map([["router.lan", ["192.168.1.1"]]]), classesOf);
  assert.deepEqual(
    [...journal].sort(),
    [
      ["1234|10.0.0.9|cname.example", clock.now + 90n * S],
      ["1234|10.0.0.9|x.fastly.net", clock.now + 90n * S],
      ["1234|140.82.112.3|github.com", clock.now + 35n * S],
    ],
    "/etc/hosts names are not journaled (the next daemon reads the file)",
  );
  clock.now += 36n * S;
  s.sweep(classesOf);
  assert.deepEqual([...journal.keys()].sort(), [
    "1234|10.0.0.9|cname.example",
    "1234|10.0.0.9|x.fastly.net",
  ]);
});

test("a live connection's extension is journaled too", () => {
  const { s, clock, journal } = store({ minTtl: 5, grace: 30, live: () => true });
  s.learn(curl, ["github.com"], [{ ip: "140.82.112.3", ttlSeconds: 0, ownerIndex: 0 }], classesOf);
  clock.now += 36n * S;
  s.sweep(classesOf, 2n * S);
  assert.equal(journal.get("1234|140.82.112.3|github.com"), clock.now + 32n * S);
});

test("a new store restored from the journal binds the same names in a new image's classes", () => {
  const old = store();
  old.s.learn(
    curl,
    ["github.com"],
    [{ ip: "140.82.112.3", ttlSeconds: 60, ownerIndex: 0 }],
    classesOf,
  );
  old.s.learn(
    wget,
    ["x.fastly.net"],
    [{ ip: "10.0.0.9", ttlSeconds: 60, ownerIndex: 0 }],
    classesOf,
  );
  const journaled: JournaledName[] = [
    { identity: curl, ip: "140.82.112.3", name: "github.com", expiresNs: old.clock.now + 90n * S },
    { identity: wget, ip: "10.0.0.9", name: "x.fastly.net", expiresNs: old.clock.now + 90n * S },
  ];
  assert.deepEqual([...old.journal.values()], [old.clock.now + 90n * S, old.clock.now + 90n * S]);
  const next = store();
  next.s.restore(journaled);
  const swapped = (names: readonly string[]) => (classesOf(names) === 1 ? 2 : 1);
  assert.deepEqual(next.s.bindingsFor(swapped), [
    { identity: curl, ip: "140.82.112.3", nclass: 2, expiresNs: next.clock.now + 90n * S },
    { identity: wget, ip: "10.0.0.9", nclass: 1, expiresNs: next.clock.now + 90n * S },
  ]);
  assert.deepEqual(next.s.namesOf(curl, "140.82.112.3"), ["github.com"]);
  assert.equal(next.journal.size, 0, "restoring writes nothing: the journal has them");
});

test("the same answer asked again is written a step ahead, then not again until the step is used", () => {
  const { s, clock, journal } = store({ minTtl: 5, grace: 30 });
  const again = () =>
    s.learn(curl, ["github.com"], [{ ip: "10.0.0.1", ttlSeconds: 0, ownerIndex: 0 }], classesOf);
  const first = again();
  assert.equal(first[0]?.expiresNs, clock.now + 35n * S);
  assert.deepEqual(again(), [], "the same life: nothing to write");
  clock.now += 1n * S;
  // the kernel's copy no longer covers now + 35 s: written with 5 s to spare
  assert.deepEqual(again(), [
    { identity: curl, ip: "10.0.0.1", nclass: 1, expiresNs: clock.now + 40n * S },
  ]);
  assert.equal(journal.get("1234|10.0.0.1|github.com"), clock.now + 40n * S);
  for (let i = 0; i < 5; i++) {
    clock.now += 1n * S;
    assert.deepEqual(again(), [], `covered by the step (${i + 1} s later)`);
  }
  clock.now += 1n * S;
  assert.equal(again()[0]?.expiresNs, clock.now + 40n * S, "the step used up: written again");
  // the store keeps the exact life: the sweep unbinds 35 s after the last answer
  clock.now += 35n * S;
  assert.deepEqual(s.sweep(classesOf).unbind, [{ identity: curl, ip: "10.0.0.1" }]);
  assert.equal(journal.size, 0);
});

test("a new name for an address is written at once; a binding the full map refused is written again", () => {
  const { s, clock } = store({ minTtl: 5, grace: 30 });
  const first = s.learn(
    curl,
    ["github.com"],
    [{ ip: "10.0.0.1", ttlSeconds: 0, ownerIndex: 0 }],
    classesOf,
  );
  const widened = s.learn(
    curl,
    ["x.fastly.net"],
    [{ ip: "10.0.0.1", ttlSeconds: 0, ownerIndex: 0 }],
    classesOf,
  );
  assert.deepEqual(widened, [
    { identity: curl, ip: "10.0.0.1", nclass: 3, expiresNs: clock.now + 35n * S },
  ]);
  s.unwritten(widened);
  const retried = s.learn(
    curl,
    ["github.com"],
    [{ ip: "10.0.0.1", ttlSeconds: 0, ownerIndex: 0 }],
    classesOf,
  );
  assert.deepEqual(retried, widened, "the kernel did not take it: written again");
  assert.deepEqual(
    s.learn(curl, ["github.com"], [{ ip: "10.0.0.1", ttlSeconds: 0, ownerIndex: 0 }], classesOf),
    [],
  );
  assert.equal(first.length, 1);
});

/** A server's answer to `qname` A with `records`, read as the proxy reads it, learned for curl. */
function learnAnswer(s: BindingStore, qname: string, records: dnsPacket.Answer[]) {
  const packet = dnsPacket.encode({
    type: "response",
    id: 1,
    questions: [{ type: "A", name: qname }],
    answers: records,
  });
  const a = readAnswer(packet, qname);
  assert.ok(a, "a response");
  return s.learn(curl, a.names, a.addresses, (names) =>
    names.includes("allowed.example") ? 1 : 0,
  );
}
const cname = (name: string, data: string): dnsPacket.Answer => ({ type: "CNAME", name, data });
const a = (name: string, data: string): dnsPacket.Answer => ({ type: "A", name, ttl: 60, data });

test("an address is bound to its record's owner and the names before it in the chain, never after", () => {
  const { s } = store();
  // the server of attacker.example says its name is an alias of allowed.example, and gives an
  // address of its own name: that address is attacker.example's, not allowed.example's
  const bound = learnAnswer(s, "attacker.example", [
    cname("attacker.example", "allowed.example"),
    a("attacker.example", "203.0.113.66"),
  ]);
  assert.deepEqual(bound, [], "nothing of allowed.example's class reaches the kernel");
  assert.deepEqual(s.namesOf(curl, "203.0.113.66"), ["attacker.example"]);

  learnAnswer(s, "www.example", [
    cname("www.example", "cdn.example"),
    a("cdn.example", "192.0.2.10"),
  ]);
  assert.deepEqual(s.namesOf(curl, "192.0.2.10"), ["www.example", "cdn.example"]);

  learnAnswer(s, "one.example", [
    cname("one.example", "two.example"),
    cname("two.example", "three.example"),
    a("two.example", "192.0.2.20"),
    a("three.example", "192.0.2.21"),
  ]);
  assert.deepEqual(s.namesOf(curl, "192.0.2.20"), ["one.example", "two.example"]);
  assert.deepEqual(s.namesOf(curl, "192.0.2.21"), ["one.example", "two.example", "three.example"]);
});

test("a CNAME loop, a branch, records out of order: only names the chain reaches get addresses", () => {
  const { s } = store();
  learnAnswer(s, "loop.example", [
    a("back.example", "192.0.2.31"),
    cname("loop.example", "back.example"),
    cname("back.example", "loop.example"),
    a("loop.example", "192.0.2.30"),
  ]);
  assert.deepEqual(s.namesOf(curl, "192.0.2.30"), ["loop.example"]);
  assert.deepEqual(s.namesOf(curl, "192.0.2.31"), ["loop.example", "back.example"]);
  // two CNAMEs for one name: the first is followed; the other target is reached by nothing
  const bound = learnAnswer(s, "fork.example", [
    cname("fork.example", "tine.example"),
    cname("fork.example", "allowed.example"),
    a("allowed.example", "192.0.2.40"),
    a("tine.example", "192.0.2.41"),
  ]);
  assert.deepEqual(bound, []);
  assert.deepEqual(s.namesOf(curl, "192.0.2.40"), []);
  assert.deepEqual(s.namesOf(curl, "192.0.2.41"), ["fork.example", "tine.example"]);
});

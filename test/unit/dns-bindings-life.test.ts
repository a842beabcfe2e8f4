// How long a learned address lives, max(ttl, min_ttl) + grace (the grace rounded up to a
// second), follows every change of the TTL and of the policy's dns settings between answers: the
// store remembers the last life it worked out, and must not hand it to an answer it does not fit.
import { test } from "node:test";
import assert from "node:assert/strict";
import { BindingStore } from "../../src/dns/bindings.ts";
import type { NameIdentity } from "../../src/dns/ports.ts";

const S = 1_000_000_000n;
const NOW = 1000n * S;
const curl: NameIdentity = { cgroupId: 77n, exeIno: 1234n, exeDev: 0x800001, uid: 1000 };
const everything = () => 1;

test("each address lives its own TTL's life, with the settings of the moment it was learned", () => {
  const settings = { minTtl: 5, grace: 30 };
  const s = new BindingStore({
    now: () => NOW,
    minTtlSeconds: () => settings.minTtl,
    graceSeconds: () => settings.grace,
  });
  let ip = 0;
  const lifeOf = (ttlSeconds: number): bigint => {
    const out = s.learn(
      curl,
      ["a.example"],
      [{ ip: `10.0.0.${++ip}`, ttlSeconds, ownerIndex: 0 }],
      everything,
    );
    assert.equal(out.length, 1);
    return (out[0]!.expiresNs - NOW) / S;
  };
  assert.equal(lifeOf(60), 90n);
  assert.equal(lifeOf(60), 90n, "the same TTL and settings again");
  assert.equal(lifeOf(0), 35n, "under the floor");
  assert.equal(lifeOf(60), 90n, "back to the first TTL");
  assert.equal(lifeOf(2.5), 35n);
  settings.grace = 10;
  assert.equal(lifeOf(60), 70n, "a reload's grace");
  settings.grace = 0.2;
  assert.equal(lifeOf(60), 61n, "the grace rounded up to a second");
  settings.minTtl = 100;
  assert.equal(lifeOf(60), 101n, "a reload's floor");
  assert.equal(lifeOf(100.5), 102n, "a TTL rounded up to a second");

  // several addresses of one answer, each with its own TTL
  settings.minTtl = 5;
  settings.grace = 30;
  const out = s.learn(
    curl,
    ["b.example"],
    [
      { ip: "10.1.0.1", ttlSeconds: 60, ownerIndex: 0 },
      { ip: "10.1.0.2", ttlSeconds: 0, ownerIndex: 0 },
      { ip: "10.1.0.3", ttlSeconds: 60, ownerIndex: 0 },
    ],
    everything,
  );
  assert.deepEqual(
    out.map((b) => (b.expiresNs - NOW) / S),
    [90n, 35n, 90n],
  );
});

test("a TTL with its top bit set is 0 (RFC 2181), and no TTL binds for more than a day", () => {
  const s = new BindingStore({ now: () => NOW, minTtlSeconds: () => 5, graceSeconds: () => 30 });
  let ip = 0;
  const lifeOf = (ttlSeconds: number): bigint =>
    (s.learn(
      curl,
      ["a.example"],
      [{ ip: `10.2.0.${++ip}`, ttlSeconds, ownerIndex: 0 }],
      everything,
    )[0]!.expiresNs -
      NOW) /
    S;
  assert.equal(lifeOf(0xffffffff), 35n, "2^32-1: the top bit set, taken as 0");
  assert.equal(lifeOf(0x80000000), 35n);
  assert.equal(lifeOf(0x7fffffff), 86400n + 30n, "the largest TTL binds one day");
  assert.equal(lifeOf(86401), 86400n + 30n);
  assert.equal(lifeOf(86399), 86399n + 30n, "under a day: as the answer says");
});

// The names an identity learned for an address, then those every identity shares (/etc/hosts):
// each live name once, the identity's own first, in the order they were learned. Checked against
// a plain reference over random histories of answers, expiries and /etc/hosts contents.
import { test } from "node:test";
import assert from "node:assert/strict";
import { BindingStore } from "../../src/dns/bindings.ts";
import { identityKey, ZERO_IDENTITY, type NameIdentity } from "../../src/dns/ports.ts";
import { unmapped } from "../../src/dns/trusted.ts";

const S = 1_000_000_000n;
const who: NameIdentity[] = [
  { cgroupId: 77n, exeIno: 1234n, exeDev: 1, uid: 1000 },
  { cgroupId: 77n, exeIno: 999n, exeDev: 1, uid: 1000 },
  ZERO_IDENTITY,
];
const IPS = ["10.0.0.1", "10.0.0.2", "::ffff:10.0.0.1", "2001:DB8::1"];
const NAMES = ["a.test", "B.test.", "c.test", "d.test"];

/** A small deterministic random source (the same histories each run). */
function random(seed: number): (n: number) => number {
  let x = seed;
  return (n) => {
    x = (x * 1103515245 + 12345) & 0x7fffffff;
    return (x >>> 16) % n;
  };
}

/** namesOf as a set of every identity's live names, own first (the reference). */
function reference(
  entries: (identity: NameIdentity, ip: string) => Map<string, bigint> | undefined,
  identity: NameIdentity,
  ip: string,
  now: bigint,
): string[] {
  const names = new Set<string>();
  const isZero = identity === ZERO_IDENTITY;
  for (const id of isZero ? [identity] : [identity, ZERO_IDENTITY])
    for (const [n, e] of entries(id, ip) ?? []) if (e > now) names.add(n);
  return [...names];
}

test("namesOf: own live names first, then the shared ones, each once", () => {
  const rnd = random(7);
  let several = 0;
  for (let run = 0; run < 50; run++) {
    const clock = { now: 1000n * S };
    const store = new BindingStore({
      now: () => clock.now,
      minTtlSeconds: () => 5,
      graceSeconds: () => 10,
    });
    // the store's own entries, read directly: the reference shares nothing with namesOf
    const map = (store as unknown as { entries: Map<string, { names: Map<string, bigint> }> })
      .entries;
    const entries = (identity: NameIdentity, ip: string) =>
      map.get(`${identityKey(identity)}|${unmapped(ip).toLowerCase()}`)?.names;
    for (let step = 0; step < 60; step++) {
      const op = rnd(4);
      if (op === 0) {
        const hosts = new Map<string, string[]>();
        for (let i = rnd(3); i > 0; i--)
          hosts.set(NAMES[rnd(NAMES.length)] ?? "", [IPS[rnd(IPS.length)] ?? ""]);
        store.setShared(hosts, () => 1);
      } else if (op === 1) {
        clock.now += BigInt(rnd(12)) * S;
        store.sweep(() => 1);
      } else {
        const identity = who[rnd(2)] ?? ZERO_IDENTITY;
        const names = NAMES.filter(() => rnd(2) === 0);
        store.learn(
          identity,
          names,
          [{ ip: IPS[rnd(IPS.length)] ?? "", ttlSeconds: rnd(10), ownerIndex: names.length - 1 }],
          () => 1,
        );
      }
      for (const identity of who)
        for (const ip of IPS) {
          const got = store.namesOf(identity, ip);
          if (got.length > 1) several++;
          assert.deepEqual(
            got,
            reference(entries, identity, ip, clock.now),
            `run ${run} step ${step}: ${ip}`,
          );
        }
    }
  }
  assert.ok(several > 100, `the histories give addresses several names (${several})`);
});

// The connection table read in place (conntrackViews): every field a view gives equals the
// field decodeConntrack gives for the same entry, over random entries of both families, both
// directions and initiators, every verdict and TCP state (and codes moat never writes), in a
// real BPF map of the table's key and value sizes, read back by batch lookups.
import { test } from "node:test";
import assert from "node:assert/strict";
import { ct as ctCodec, ctKey as keyCodec } from "../../src/datapath/abi.ts";
import { conntrackViews, decodeConntrack } from "../../src/datapath/conntrack.ts";
import { createMap } from "../../src/datapath/table-maps.ts";

const MAP_LRU_HASH = 9;
const ENTRIES = 3000;

/** A small seeded generator (mulberry32): the same entries on every run. */
function random(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

test("a view of each entry reads what decodeConntrack decodes", () => {
  const rand = random(20261204);
  const byte = () => Math.floor(rand() * 256);
  const bytes = (n: number) => Buffer.from(Array.from({ length: n }, byte));
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
  const map = createMap("moat_test_ctv", MAP_LRU_HASH, keyCodec.size, ctCodec.size, 8192, 0);
  try {
    for (let i = 0; i < ENTRIES; i++) {
      const family = pick([4, 6] as const);
      const addr = () => {
        const b = bytes(16);
        if (family === 4) b.fill(0, 0, 10).fill(0xff, 10, 12);
        return b;
      };
      const key = keyCodec.encode({
        addr0: addr(),
        addr1: addr(),
        port0: byte() * 256 + byte(),
        port1: byte() * 256 + byte(),
        family,
        protocol: pick([6, 17, 1, 58, 47]),
      });
      const value = ctCodec.encode({
        id: BigInt(i + 1),
        last_ns: BigInt(Math.floor(rand() * 2 ** 52)) * 4096n + BigInt(byte()),
        initiator: pick([0, 1]),
        direction: pick([0, 1]),
        verdict: pick([0, 1, 2, 3, 9]),
        tcp_state: pick([0, 1, 2, 3, 4, 5, 6, 7, 200]),
        owner: bytes(48),
      });
      map.update(key, value);
    }
    let seen = 0;
    for (const view of conntrackViews(map, 256)) {
      const e = decodeConntrack(view.key, view.value);
      const read = {
        protocol: view.protocol,
        direction: view.direction,
        verdict: view.verdict,
        tcpState: view.tcpState,
        lastNs: view.lastNs,
        remoteIp: view.remoteIp,
        owner: Buffer.from(view.owner),
      };
      const decoded = {
        protocol: e.protocol,
        direction: e.direction,
        verdict: e.verdict,
        tcpState: e.tcpState,
        lastNs: e.lastNs,
        remoteIp: e.remote.ip,
        owner: Buffer.from(e.value.owner),
      };
      assert.deepEqual(read, decoded, `entry ${e.id}`);
      seen++;
    }
    assert.equal(seen, ENTRIES, "every entry is visited once");
  } finally {
    map.close();
  }
});

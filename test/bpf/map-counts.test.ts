// The connection table's occupancy as status, /metrics and OpenTelemetry report it: the kernel's
// own count (map_count.bpf.o's iterator) equals a walk of the table after inserts, deletes and
// LRU evictions, in a real map of the table's kind and sizes; and a daemon's datapath reports
// the connections it tracks.
import { test } from "node:test";
import assert from "node:assert/strict";
import { ct as ctCodec, ctKey as keyCodec } from "../../src/datapath/abi.ts";
import { MAP_COUNT_OBJECT, MapCounts, countByWalk } from "../../src/datapath/map-counts.ts";
import { native } from "../../src/datapath/addon.ts";
import { NativeError } from "../../src/datapath/errors.ts";
import { createMap } from "../../src/datapath/table-maps.ts";

const MAP_LRU_HASH = 9;

function key(i: number): Buffer {
  const addr = Buffer.alloc(16);
  addr.fill(0xff, 10, 12);
  addr.writeUInt32BE(0x0a000000 + i, 12);
  return keyCodec.encode({
    addr0: addr,
    addr1: addr,
    port0: 1000,
    port1: 80,
    family: 4,
    protocol: 6,
  });
}

test("the kernel's count of a table equals a walk: inserts, deletes, LRU evictions", () => {
  const counts = new MapCounts();
  const map = createMap("moat_test_count", MAP_LRU_HASH, keyCodec.size, ctCodec.size, 2048, 0);
  const value = ctCodec.encode({ id: 1n });
  try {
    assert.equal(counts.count(map), 0);
    for (let i = 0; i < 1500; i++) map.update(key(i), value);
    assert.equal(counts.unavailable, null, "the iterator loads on this kernel");
    assert.equal(counts.count(map), 1500);
    for (let i = 0; i < 1500; i += 3) map.delete(key(i));
    assert.equal(counts.count(map), 1000);
    assert.equal(counts.count(map), countByWalk(map));
    // past the table's size the LRU evicts: the count follows what is left
    for (let i = 1500; i < 6000; i++) map.update(key(i), value);
    const walked = countByWalk(map);
    assert.ok(walked < 2048 && walked > 1000, `${walked} entries after evictions`);
    assert.equal(counts.count(map), walked);
  } finally {
    map.close();
    counts.close();
  }
});

test("after the iterator is gone, counts are walked; a destroyed iterator link says EBADF", () => {
  const counts = new MapCounts();
  const map = createMap("moat_test_count2", MAP_LRU_HASH, keyCodec.size, ctCodec.size, 64, 0);
  try {
    map.update(key(1), ctCodec.encode({ id: 1n }));
    assert.equal(counts.count(map), 1);
    counts.close();
    map.update(key(2), ctCodec.encode({ id: 2n }));
    assert.equal(counts.count(map), 2);
    const object = native().BpfObject.open(MAP_COUNT_OBJECT);
    try {
      object.load();
      const link = object.program("map_counts").attachIter();
      assert.match(link.readIter(), /^\d+ \d+$/m);
      link.destroy();
      assert.throws(
        () => link.readIter(),
        (e: unknown) => e instanceof NativeError && e.code === "EBADF",
      );
    } finally {
      object.close();
    }
  } finally {
    map.close();
  }
});

test("a map the iterator does not list is walked", () => {
  const counts = new MapCounts();
  try {
    const fake = {
      id: () => 0,
      lookupBatch: () => ({ count: 7, keys: Buffer.alloc(0), values: Buffer.alloc(0), next: null }),
    };
    assert.equal(counts.count(fake), 7);
  } finally {
    counts.close();
  }
});

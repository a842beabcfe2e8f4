// The u32 keys 0..n that every array table is written with (src/datapath/table-maps.ts) are shared
// while a table's content holds them and let go with it: the daemon does not keep the longest run
// of keys after its swap.
import { test } from "node:test";
import assert from "node:assert/strict";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { isSequential, sequentialKeys } from "../../src/datapath/table-maps.ts";

setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;

test("sequential keys are 0..n, shared while held, and let go once nothing holds them", async () => {
  let keys: Buffer | undefined = sequentialKeys(100_000);
  assert.deepEqual([...new Uint32Array(keys.buffer, 0, 4)], [0, 1, 2, 3]);
  assert.equal(keys.length, 400_000);
  let fewer: Buffer | undefined = sequentialKeys(10);
  assert.equal(fewer.buffer, keys.buffer, "a shorter run is a view of the same keys");
  assert.ok(isSequential(keys) && isSequential(fewer));
  assert.equal(isSequential(Buffer.from(fewer)), false, "a copy is not known as 0..n");
  const gone = new WeakRef(keys.buffer);
  keys = fewer = undefined;
  for (let i = 0; i < 10 && gone.deref(); i++) {
    await new Promise((r) => setImmediate(r)); // a WeakRef's target is held through its turn
    gc();
  }
  assert.equal(gone.deref(), undefined, "no table holds them: the keys are garbage");
  const again = sequentialKeys(3);
  assert.deepEqual([...new Uint32Array(again.buffer, 0, 3)], [0, 1, 2]);
  assert.ok(isSequential(again));
});

// What a policy change left behind goes back at once: after giveMemoryBack, an object nothing holds
// any more is collected (V8 would otherwise keep it until its next collection), and the call can be
// made again (it runs after every stop of the policy worker).
import { test } from "node:test";
import assert from "node:assert/strict";
import { giveMemoryBack } from "../../src/daemon/memory-back.ts";

/** A WeakRef to an object nothing else holds (made in a turn of its own: a WeakRef's target is
 * held until the end of the turn that made it). */
async function dropped(): Promise<WeakRef<object>> {
  const ref = new WeakRef(Array.from({ length: 1000 }, (_, i) => [i, i + 1]));
  await new Promise((resolve) => setImmediate(resolve));
  return ref;
}

test("garbage is collected when the daemon gives its memory back, every time it does", async () => {
  for (let round = 1; round <= 2; round++) {
    const ref = await dropped();
    giveMemoryBack();
    assert.equal(ref.deref(), undefined, `round ${round}`);
  }
});

test("the C heap is given back again later: what the stopped worker's teardown frees after it", (t) => {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  let trims = 0;
  giveMemoryBack(() => trims++);
  assert.equal(trims, 1, "at once");
  t.mock.timers.tick(2_000);
  assert.equal(trims, 2, "2 s later");
  t.mock.timers.tick(13_000);
  assert.equal(trims, 3, "15 s later");
  t.mock.timers.tick(15_000);
  assert.equal(trims, 4, "30 s later");
  t.mock.timers.tick(60_000);
  assert.equal(trims, 4, "and no more");
});

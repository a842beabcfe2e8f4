// The running policy's text is kept deflated once it is long (src/daemon/kept-text.ts): what is
// read back is the text as it was, whatever it holds.
import { test } from "node:test";
import assert from "node:assert/strict";
import { KeptText } from "../../src/daemon/kept-text.ts";

/** Until the deflate in the background is done (a few turns), or 200 turns. */
async function settled(kept: KeptText): Promise<void> {
  for (let i = 0; i < 200 && !kept.deflated; i++) await new Promise((r) => setTimeout(r, 5));
}

test("a long text is kept deflated and read back as it was, non-ASCII too", async () => {
  const text = "rules:\n" + "  - { name: é✓😀, remote: [10.0.0.0/8] }\n".repeat(5000);
  const kept = new KeptText(text, 1024);
  assert.equal(kept.text, text, "read as it was before the deflate is done");
  await settled(kept);
  assert.ok(kept.deflated);
  assert.equal(kept.text, text);
  assert.equal(kept.text, text, "read again");
});

test("a short text, or one UTF-8 cannot carry (a lone surrogate), is kept as it is", async () => {
  const short = new KeptText("version: 1\n", 1024);
  const lone = "# \ud800\n".repeat(1000);
  const odd = new KeptText(lone, 1024);
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(short.deflated, false);
  assert.equal(odd.deflated, false);
  assert.equal(short.text, "version: 1\n");
  assert.equal(odd.text, lone);
});

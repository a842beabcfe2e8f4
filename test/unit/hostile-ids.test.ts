// IDS rules files may come from the internet: a signature's header is read in time linear in its
// length. A port of many digits and no range (`111…1x`) was tried at every split of the digits
// between two digit runs (time squared: 80,000 digits 6.7 s); a bracketed list spread over many
// words was measured again from its start after each word (time squared: 20,000 words 60 s).
import { test } from "node:test";
import assert from "node:assert/strict";
import { parseSignature } from "../../src/config/ids-signature.ts";

test("a port of a long run of digits is malformed, read in one pass", () => {
  for (const port of [`${"1".repeat(100_000)}x`, `[80,${"1".repeat(100_000)}x]`]) {
    const r = parseSignature(`alert tcp any ${port} -> any any (sid:1; content:"a";)`);
    assert.equal(r.ok, false);
    assert.equal(r.ok ? "" : r.problems[0]?.kind, "malformed");
  }
  const ranges = parseSignature(`alert tcp any [1024:,:80,8080] -> any 443 (sid:1; content:"a";)`);
  assert.ok(ranges.ok);
  assert.deepEqual(ranges.signature.source.ports, {
    kind: "list",
    ranges: [
      { lo: 1024, hi: 65535, negated: false },
      { lo: 0, hi: 80, negated: false },
      { lo: 8080, hi: 8080, negated: false },
    ],
  });
});

test("an address list spread over many words is read in one pass", () => {
  const n = 20_000;
  const r = parseSignature(
    `alert tcp [${"192.0.2.1, ".repeat(n)}10.0.0.0/8] any -> any any (sid:1; content:"a";)`,
  );
  assert.ok(r.ok);
  const addresses = r.signature.source.addresses;
  assert.equal(addresses.kind === "list" ? addresses.entries.length : 0, n + 1);
});

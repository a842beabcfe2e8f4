// Address entries and feed bodies come from files and from the network (a feed's URL, a set a tool
// fills): a long hostile line is read in one pass and refused with its reason, never a read whose
// time grows with the square of its length (which would stall the daemon that fetched it).
import { test } from "node:test";
import assert from "node:assert/strict";
import { parseAddressEntry } from "../../src/config/address-entry.ts";
import { feedAddresses, stixPatternAddresses } from "../../src/config/feed-parse.ts";

/** Long enough that a read in squared time would not end within the test's time. */
const LONG = 100_000;

test("a long entry of address characters is refused, not read by backtracking", () => {
  for (const text of [
    "1.".repeat(LONG),
    "1:".repeat(LONG),
    `${"1.".repeat(LONG)}-`,
    `${"a:".repeat(LONG)}-x`,
  ]) {
    const r = parseAddressEntry(text);
    assert.equal(r.ok, false, text.slice(0, 12));
  }
  const range = parseAddressEntry("10.0.0.1-10.0.0.9");
  assert.ok(range.ok && range.value.target.kind === "interval");
  assert.equal(parseAddressEntry("10.0.0.1-10.0.0.9-10.0.0.10").ok, false);
});

test("a feed line of address characters is counted refused", () => {
  const body = `198.51.100.7\n${"1.".repeat(LONG)}\n2001:db8::/32\n`;
  const { entries, refused } = feedAddresses(body, "plain");
  assert.deepEqual(
    entries.map((e) => e.value),
    ["198.51.100.7", "2001:db8::/32"],
  );
  assert.deepEqual([...refused], [["not an address, CIDR or range", 1]]);
});

test("a STIX pattern with a long run of blanks is refused; ORs around blanks still split", () => {
  const blanks = `[ipv4-addr:value = '198.51.100.7']${" ".repeat(LONG)}x`;
  assert.equal(stixPatternAddresses(blanks), null);
  assert.deepEqual(
    stixPatternAddresses(
      "[ipv4-addr:value = '198.51.100.7'  OR\tipv6-addr:value = '2001:db8::1'] OR [ipv4-addr:value = '203.0.113.9']",
    ),
    ["198.51.100.7", "2001:db8::1", "203.0.113.9"],
  );
  const bundle = JSON.stringify({
    type: "bundle",
    objects: [{ type: "indicator", pattern_type: "stix", pattern: blanks }],
  });
  assert.deepEqual(
    [...feedAddresses(bundle, "stix").refused],
    [["pattern other than address equalities", 1]],
  );
});

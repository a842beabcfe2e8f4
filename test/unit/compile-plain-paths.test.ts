// The short ways the loader and the compiler take for the usual entry (a plain port range, a rule
// of one IPv4 range and one port range) give what the general ways give, for random input.

import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import type { AddressList, Layer4, Rule } from "../../src/config/model.ts";
import { parsePortEntry, plainPortRange } from "../../src/config/port-entry.ts";
import { onlyV4, Regions, addressSpaces } from "../../src/policy/compile/address-regions.ts";
import { Column } from "../../src/policy/compile/dimensions.ts";
import { interval } from "../../src/policy/compile/intervals.ts";
import { layer4Region, onePortStart, portRegion } from "../../src/policy/compile/ports.ts";

const POS = { file: "t.yaml", line: 1, col: 1, path: "" };

/** Strings near a port range: digits, dashes, spaces, signs, leading zeros, big numbers. */
const portText = fc.oneof(
  fc.stringMatching(/^[0-9]{0,6}(-[0-9]{0,6})?$/),
  fc.stringMatching(/^[ 0-9+!.x-]{0,9}$/),
  fc.tuple(fc.nat(70000), fc.nat(70000)).map(([a, b]) => `${a}-${b}`),
  fc.nat(70000).map(String),
  fc.constantFrom("set:web", "0", "00080", "65535", "65536", "1-1", "2-1", "-", "1-", "-1", "1--2"),
);

test("a plain port range reads as parsePortEntry reads it, or is left to it", () => {
  fc.assert(
    fc.property(portText, (text) => {
      const plain = plainPortRange(text);
      const parsed = parsePortEntry(text);
      if (plain < 0) {
        // left to parsePortEntry: only what is not digits-dash-digits written plainly
        if (parsed.ok && parsed.value.kind === "range")
          assert.doesNotMatch(text, /^\d{1,5}(-\d{1,5})?$/);
        return;
      }
      assert.ok(parsed.ok, text);
      assert.deepEqual(
        { kind: "range", lo: Math.floor(plain / 65536), hi: plain % 65536 },
        parsed.value,
      );
    }),
    { numRuns: 5000 },
  );
});

const v4Entry = fc
  .tuple(fc.nat(2 ** 32 - 1), fc.integer({ min: 0, max: 32 }), fc.boolean())
  .map(([value, len, negate]) => {
    const size = 2 ** (32 - len);
    const start = BigInt(value - (value % size));
    return {
      kind: "interval" as const,
      text: "x",
      negate,
      pos: POS,
      family: 4 as const,
      start,
      end: start + BigInt(size - 1),
    };
  });
const v6Entry = fc.bigInt({ min: 0n, max: (1n << 128n) - 1n }).map((start) => ({
  kind: "interval" as const,
  text: "x",
  negate: false,
  pos: POS,
  family: 6 as const,
  start,
  end: start,
}));

test("a list of one IPv4 range is its range alone", () => {
  fc.assert(
    fc.property(fc.array(fc.oneof(v4Entry, v6Entry), { maxLength: 2 }), (entries) => {
      const list: AddressList = { entries, pos: POS };
      const only = onlyV4(list);
      if (!only) {
        assert.ok(entries.length !== 1 || entries[0]!.family === 6 || entries[0]!.negate);
        return;
      }
      const region = new Regions(addressSpaces([list])).list(list);
      assert.deepEqual([...region.v4], [Number(only.start), Number(only.end) + 1]);
      assert.equal(region.v6.length, 0);
    }),
    { numRuns: 2000 },
  );
});

const ranges = fc.array(
  fc.tuple(fc.nat(65535), fc.nat(65535)).map(([a, b]) => ({
    lo: Math.min(a, b),
    hi: Math.max(a, b),
    text: "x",
    pos: POS,
  })),
  { minLength: 1, maxLength: 2 },
);
const layer4: fc.Arbitrary<Layer4 | undefined> = fc.option(
  fc.record(
    {
      protocol: fc.constantFrom(null, 6, 17, 1, 58, 47),
      ports: ranges,
      sourcePorts: ranges,
      pos: fc.constant(POS),
    },
    { requiredKeys: ["protocol", "pos"] },
  ),
  { nil: undefined },
);

test("a rule of one direction, tcp or udp and one port range is that range alone", () => {
  fc.assert(
    fc.property(fc.constantFrom("ingress", "egress", "any"), layer4, (direction, l4) => {
      const rule = { direction, layer4: l4 } as Rule;
      const start = onePortStart(rule);
      if (start < 0) return;
      const only = l4!.ports![0]!;
      const region = portRegion(rule, layer4Region(l4));
      assert.deepEqual([...region], [start, start + only.hi - only.lo + 1]);
    }),
    { numRuns: 3000 },
  );
});

test("a column takes an interval as it takes the set of that interval", () => {
  fc.assert(
    fc.property(
      fc.array(fc.option(fc.tuple(fc.nat(1000), fc.integer({ min: 1, max: 50 })), { nil: null })),
      (items) => {
        const a = new Column(items.length);
        const b = new Column(items.length);
        for (const item of items) {
          if (item === null) {
            a.push(undefined);
            b.push(undefined);
          } else {
            a.push(interval(item[0], item[0] + item[1]));
            b.pushInterval(item[0], item[0] + item[1]);
          }
        }
        items.forEach((_, r) => assert.deepEqual(b.get(r), a.get(r)));
        assert.deepEqual(b.wild, a.wild);
      },
    ),
  );
});

// A name in a feed, a set file or a CrowdSec decision is untrusted text: a long non-ASCII entry is
// refused as not a name (no DNS name is longer than 253 characters), never turned into Punycode
// first. Encoded first, a line of 150,000 "ü" overflowed the stack (the load threw, a fetched feed
// or a CrowdSec poll failed as a whole), and 16,000 distinct characters took seconds (the time grew
// with the square of the line's length).
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseAddressEntry, parseHostname } from "../../src/config/address-entry.ts";
import { feedAddresses } from "../../src/config/feed-parse.ts";
import { checkPolicySource } from "../../src/config/index.ts";
import { decisionChanges } from "../../src/daemon/crowdsec.ts";
import { nodeHost } from "../../src/host/policy-files.ts";

const LONG_SAME = "ü".repeat(150_000);

/** Distinct code points: Punycode's encoder walks the label once per distinct one. */
function distinct(n: number): string {
  let s = "";
  for (let i = 0; i < n; i++) s += String.fromCodePoint(0x4e00 + i);
  return s;
}

test("a long non-ASCII entry is refused as not a name; an IDN still reads", () => {
  assert.equal(parseAddressEntry(LONG_SAME).ok, false);
  assert.equal(parseHostname(`**.${LONG_SAME}`).ok, false);
  const idn = parseHostname("bücher.example");
  assert.ok(idn.ok);
  assert.equal(idn.value.name, "xn--bcher-kva.example");
});

test("a feed line of many distinct non-ASCII characters is counted refused", () => {
  // 40,000 distinct characters: minutes before, read at once after
  const { entries, refused } = feedAddresses(`203.0.113.9\n${distinct(40_000)}\n`, "plain");
  assert.deepEqual(
    entries.map((e) => e.value),
    ["203.0.113.9"],
  );
  assert.deepEqual([...refused], [["not an address, CIDR or range", 1]]);
});

test("a fetched feed body with a long non-ASCII line is counted refused, not thrown", () => {
  const { entries, refused } = feedAddresses(`203.0.113.9\n${LONG_SAME}\n`, "plain");
  assert.deepEqual(
    entries.map((e) => e.value),
    ["203.0.113.9"],
  );
  assert.deepEqual([...refused], [["not an address, CIDR or range", 1]]);
});

test("a CrowdSec decision on a long non-ASCII value is skipped; the others are taken", () => {
  const got = decisionChanges(
    {
      new: [
        { value: LONG_SAME, scope: "Ip", type: "ban", duration: "1h" },
        { value: "203.0.113.9", scope: "Ip", type: "ban", duration: "1h" },
      ],
      deleted: [{ value: LONG_SAME, scope: "Ip", type: "ban", duration: "0s" }],
    },
    1000,
  );
  assert.deepEqual(got, {
    adds: [{ entry: "203.0.113.9", expires: 1000 + 3_600_000 }],
    dels: [],
    skipped: 1,
  });
});

test("the loader reports a long non-ASCII line of a feed or set file, it does not throw", () => {
  const dir = mkdtempSync(join(tmpdir(), "moat-hostile-names-"));
  try {
    mkdirSync(join(dir, "sets"));
    const host = { ...nodeHost, setStore: join(dir, "sets") };
    writeFileSync(join(dir, "list.txt"), `203.0.113.9\n${LONG_SAME}\n`);
    const policy = (set: string) => `version: 1
mode: prevent
sets:
  banned: ${set}
rules:
  - name: banned
    direction: ingress
    action: block
    layer3: { remote: [set:banned] }
`;
    // a feed: the line is counted, the set keeps what could be taken
    const feed = checkPolicySource(
      policy("{ file: list.txt, format: plain }"),
      join(dir, "p.yaml"),
      host,
    );
    assert.deepEqual(
      feed.diagnostics.map((d) => d.severity),
      ["warning"],
    );
    assert.equal(feed.model?.sets.get("banned")?.entries.length, 1);
    // a plain set file: the line is an error at its FILE:LINE:COL
    const set = checkPolicySource(policy("{ file: list.txt }"), join(dir, "p.yaml"), host);
    assert.ok(
      set.diagnostics.some((d) => d.severity === "error" && d.line === 2),
      JSON.stringify(set.diagnostics.map((d) => d.message.slice(0, 80))),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

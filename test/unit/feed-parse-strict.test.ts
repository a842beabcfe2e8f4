// Feed bodies read as their formats say: a CSV record ends at a line break outside quotes (RFC
// 4180), a STIX indicator is in force only between its valid_from and valid_until and while not
// revoked (a body of retired indicators is a good body with nothing in force), what a STIX
// indicator says is checked (its revoked flag, its timestamps, its brackets, its address family),
// a UTF-8 BOM opens any body, an IPv4-mapped IPv6 entry is the IPv4 address it carries, and a
// hostile body (deep nesting, a long run of commas or quotes) is read in one pass.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { feedAddresses, parseFeed } from "../../src/config/feed-parse.ts";

/** `moat explain` of an outbound TCP connection to `remote` under a policy blocking set:ioc. */
function explainWithFeed(feed: string, settings: string, remote: string): string[] {
  const dir = mkdtempSync(join(tmpdir(), "moat-feed-explain-"));
  try {
    writeFileSync(join(dir, "ioc.txt"), feed);
    writeFileSync(
      join(dir, "p.yaml"),
      `version: 1
mode: prevent
defaults: { ingress: block, egress: allow }
sets:
  ioc: { file: ioc.txt, ${settings} }
rules:
  - name: iocs
    direction: egress
    action: block
    layer3: { remote: [set:ioc] }
`,
    );
    const run = spawnSync(
      "bin/moat",
      [
        "explain",
        join(dir, "p.yaml"),
        "tcp",
        "10.0.0.1:40000",
        "->",
        `${remote}:443`,
        "--direction",
        "egress",
      ],
      { encoding: "utf8" },
    );
    return run.stdout.split("\n").filter((l) => l.startsWith("verdict:"));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const stix = (...objects: object[]) => JSON.stringify({ type: "bundle", objects });
const indicator = (pattern: string, more: object = {}) => ({ type: "indicator", pattern, ...more });

test("csv: a quoted cell holding a line break is one cell of one record", () => {
  const text = 'id,ip,note\n1,203.0.113.50,"reported by\nx,9.9.9.9,y"\n2,198.51.100.7,z\n';
  const got = feedAddresses(text, "csv", 2);
  assert.deepEqual(
    got.entries.map((e) => [e.value, e.line]),
    [
      ["203.0.113.50", 2],
      ["198.51.100.7", 4],
    ],
  );
  assert.deepEqual([...got.refused], [], "the header is no entry, and none refused");
  assert.deepEqual(
    parseFeed('a,"x\r\ny ""q"" # z"\n', "csv", 2).entries.map((e) => e.value),
    ['x\r\ny "q" # z'],
  );
  assert.deepEqual(
    explainWithFeed(text, "format: csv, column: 2", "9.9.9.9"),
    ["verdict: allowed"],
    "text inside a quoted cell is no address of the feed",
  );
  assert.deepEqual(explainWithFeed(text, "format: csv, column: 2", "203.0.113.50"), [
    "verdict: blocked",
  ]);
});

test("csv: a quote left open refuses its record; a quote inside an unquoted cell is text", () => {
  const got = feedAddresses('203.0.113.9,a"b\n198.51.100.7,x\n192.0.2.1,"open\n', "csv", 1);
  assert.deepEqual(
    got.entries.map((e) => e.value),
    ["203.0.113.9", "198.51.100.7"],
  );
  assert.deepEqual([...got.refused], [["quote not closed", 1]]);
});

test("stix: a body whose indicators are all revoked or expired is read, with nothing in force", () => {
  const got = feedAddresses(
    stix(
      indicator("[ipv4-addr:value = '203.0.113.9']", { revoked: true }),
      indicator("[ipv4-addr:value = '198.51.100.7']", { valid_until: "2001-01-01T00:00:00Z" }),
    ),
    "stix",
  );
  assert.deepEqual(got.entries, []);
  assert.deepEqual([...got.refused], [], "nothing unreadable: the set is empty, not a bad body");
  assert.deepEqual(Object.fromEntries(got.notInForce), {
    "revoked indicator": 1,
    "expired indicator": 1,
  });
});

test("stix: an indicator before its valid_from is not in force; the list changes then", () => {
  const from = "2099-01-01T00:00:00Z";
  const got = feedAddresses(
    stix(
      indicator("[ipv4-addr:value = '203.0.113.9']", { valid_from: from }),
      indicator("[ipv4-addr:value = '198.51.100.7']", { valid_from: "2001-01-01T00:00:00Z" }),
    ),
    "stix",
  );
  assert.deepEqual(
    got.entries.map((e) => e.value),
    ["198.51.100.7"],
  );
  assert.deepEqual([...got.notInForce], [["not yet valid indicator", 1]]);
  assert.equal(got.until, Date.parse(from));
});

test("stix: what an indicator says about itself must be readable, else it is refused", () => {
  const got = feedAddresses(
    stix(
      indicator("[ipv4-addr:value = '192.0.2.1']", { valid_until: "garbage" }),
      indicator("[ipv4-addr:value = '192.0.2.2']", { valid_from: "soon" }),
      indicator("[ipv4-addr:value = '192.0.2.3']", { revoked: "true" }),
      indicator("[ipv4-addr:value = '192.0.2.4']", { revoked: 0 }),
      indicator("ipv4-addr:value = '192.0.2.5'] OR [ipv4-addr:value = '192.0.2.6'"),
      indicator("[ipv4-addr:value = '192.0.2.7'] OR ipv4-addr:value = '192.0.2.8']"),
      indicator("[ipv4-addr:value = '2001:db8::5']"),
      indicator("[ipv6-addr:value = '192.0.2.9']"),
      indicator("[ipv4-addr:value = '192.0.2.10' OR ipv6-addr:value = '2001:db8::/64']", {
        revoked: false,
        valid_from: "2001-01-01T00:00:00.123456Z",
        valid_until: "2098-01-01T00:00:00+01:00",
      }),
    ),
    "stix",
  );
  assert.deepEqual(
    got.entries.map((e) => e.value),
    ["192.0.2.10", "2001:db8::/64"],
  );
  assert.deepEqual(Object.fromEntries(got.refused), {
    "valid_until not a timestamp": 1,
    "valid_from not a timestamp": 1,
    "revoked not true or false": 2,
    "pattern other than address equalities": 2,
    "address not of its pattern's type (ipv4-addr, ipv6-addr)": 2,
  });
});

test("stix: a body opened by a UTF-8 BOM is read", () => {
  const body = `\ufeff${stix(indicator("[ipv4-addr:value = '203.0.113.9']"))}`;
  const got = feedAddresses(body, "stix");
  assert.deepEqual(
    got.entries.map((e) => e.value),
    ["203.0.113.9"],
  );
  assert.deepEqual([...got.refused], []);
  assert.deepEqual(
    feedAddresses('\ufeff"203.0.113.9",x\n', "csv").entries.map((e) => e.value),
    ["203.0.113.9"],
  );
});

test("feeds: an IPv4-mapped IPv6 entry is the IPv4 address it carries", () => {
  const text = "::ffff:203.0.113.9\n::ffff:198.51.100.0/120\n::ffff:192.0.2.1-::ffff:192.0.2.9\n";
  const got = feedAddresses(text, "plain");
  assert.deepEqual(
    got.entries.map((e) => e.value),
    ["203.0.113.9", "198.51.100.0/24", "192.0.2.1-192.0.2.9"],
  );
  assert.deepEqual(
    feedAddresses(stix(indicator("[ipv6-addr:value = '::ffff:203.0.113.9']")), "stix").entries.map(
      (e) => e.value,
    ),
    ["203.0.113.9"],
  );
  // a range reaching past the mapped block is IPv6 and stays so
  assert.deepEqual(
    feedAddresses("::ffff:0:0/95\n", "plain").entries.map((e) => e.value),
    ["::ffff:0:0/95"],
  );
  assert.deepEqual(explainWithFeed(text, "format: plain", "203.0.113.9"), ["verdict: blocked"]);
  assert.deepEqual(explainWithFeed(text, "format: plain", "198.51.100.77"), ["verdict: blocked"]);
});

test("stix: a body nested deeper than a bundle is refused before it is parsed", () => {
  assert.deepEqual(
    [...feedAddresses("[".repeat(1_000_000), "stix").refused],
    [["nested deeper than a STIX bundle", 1]],
  );
  // a bundle's own depth, with references, kill chains and an extension, is read
  const deep = indicator("[ipv4-addr:value = '203.0.113.9']", {
    external_references: [{ source_name: "x", hashes: { "SHA-256": "00" } }],
    kill_chain_phases: [{ kill_chain_name: "k", phase_name: "p" }],
    extensions: { "extension-definition--1": { extension_type: "property-extension", x: [[{}]] } },
  });
  assert.deepEqual(
    feedAddresses(stix(deep), "stix").entries.map((e) => e.value),
    ["203.0.113.9"],
  );
});

test("csv: a body of only commas or only quotes is read in one pass", () => {
  const size = 4 * 2 ** 20;
  assert.deepEqual([...feedAddresses(",".repeat(size), "csv", 2).refused], [["no column 2", 1]]);
  assert.deepEqual(
    [...feedAddresses('"'.repeat(size + 1), "csv", 1).refused],
    [["quote not closed", 1]],
  );
});

// Feeds and dynamic sets as the policy loader reads them: plain, CSV and STIX 2.1 feeds (what is
// not taken is counted and reported), a dynamic set's stored entries (expired ones skipped).
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { checkPolicySource, type PolicyHost } from "../../src/config/index.ts";
import { feedAddresses, parseFeed, stixPatternAddresses } from "../../src/config/feed-parse.ts";
import {
  formatDynamicSetFile,
  liveEntries,
  MAX_DYNAMIC_LINE_BYTES,
  parseDynamicSetFile,
} from "../../src/config/dynamic-set-file.ts";
import { MAX_DYNAMIC_ENTRIES, MAX_SET_FILE_BYTES } from "../../src/config/normalize-sets.ts";
import { parseAddressEntry } from "../../src/config/address-entry.ts";
import { nodeHost } from "../../src/host/policy-files.ts";
import { feedOf } from "../../src/policy/index.ts";
import { eventAttributes } from "../../src/observe/otel/attributes.ts";
import type { MoatEvent } from "../../src/datapath/index.ts";

test("plain feed: one entry a line, comments and blank lines skipped", () => {
  const got = parseFeed("# header\n203.0.113.9\n\n  198.51.100.0/24 # c2\n", "plain");
  assert.deepEqual(
    got.entries.map((e) => [e.value, e.line]),
    [
      ["203.0.113.9", 2],
      ["198.51.100.0/24", 4],
    ],
  );
  assert.equal(got.refused.size, 0);
});

test("csv feed: the column asked for, quotes honoured, short lines counted, the header skipped", () => {
  const text =
    'first_seen,ip,tag\n2026-01-01,"203.0.113.9",botnet\n2026-01-02\n2026-01-03,2001:db8::1,x\n';
  const got = parseFeed(text, "csv", 2);
  assert.deepEqual(
    got.entries.map((e) => e.value),
    ["203.0.113.9", "2001:db8::1"],
  );
  assert.deepEqual([...got.refused], [["no column 2", 1]]);
});

test("csv feed: a # inside quotes is a cell's text, a # outside them starts a comment", () => {
  const text = '# exported 2026-12-05\n"c2#7",203.0.113.9\nx,198.51.100.7 # seen twice\n';
  const got = parseFeed(text, "csv", 2);
  assert.deepEqual(
    got.entries.map((e) => e.value),
    ["203.0.113.9", "198.51.100.7"],
  );
  assert.deepEqual([...got.refused], []);
});

test("stix patterns: address equalities and ORs of them only", () => {
  assert.deepEqual(stixPatternAddresses("[ipv4-addr:value = '203.0.113.9']"), ["203.0.113.9"]);
  assert.deepEqual(
    stixPatternAddresses("[ipv4-addr:value = '10.0.0.0/8' OR ipv6-addr:value = '2001:db8::/32']"),
    ["10.0.0.0/8", "2001:db8::/32"],
  );
  assert.deepEqual(
    stixPatternAddresses("[ipv4-addr:value = '192.0.2.1'] OR [ipv4-addr:value = '192.0.2.2']"),
    ["192.0.2.1", "192.0.2.2"],
  );
  assert.equal(stixPatternAddresses("[domain-name:value = 'evil.example']"), null);
  assert.equal(
    stixPatternAddresses("[ipv4-addr:value = '192.0.2.1' AND network-traffic:dst_port = 80]"),
    null,
  );
  assert.equal(stixPatternAddresses("[ipv4-addr:value != '192.0.2.1']"), null);
  assert.equal(stixPatternAddresses("ipv4-addr:value = '192.0.2.1'"), null);
});

test("stix bundle: indicators taken, others counted by reason", () => {
  const bundle = {
    type: "bundle",
    id: "bundle--1",
    objects: [
      { type: "identity", id: "identity--1", name: "x" },
      { type: "indicator", pattern_type: "stix", pattern: "[ipv4-addr:value = '203.0.113.9']" },
      {
        type: "indicator",
        pattern: "[ipv6-addr:value = '2001:db8::/48' OR ipv4-addr:value = '192.0.2.0/24']",
      },
      { type: "indicator", pattern_type: "stix", pattern: "[url:value = 'http://evil.example/']" },
      { type: "indicator", pattern_type: "snort", pattern: "alert tcp any any" },
      { type: "indicator", pattern: "[ipv4-addr:value = '192.0.2.7']", revoked: true },
      {
        type: "indicator",
        pattern: "[ipv4-addr:value = '192.0.2.8']",
        valid_until: "2000-01-01T00:00:00Z",
      },
    ],
  };
  const got = parseFeed(JSON.stringify(bundle), "stix");
  assert.deepEqual(
    got.entries.map((e) => e.value),
    ["203.0.113.9", "2001:db8::/48", "192.0.2.0/24"],
  );
  assert.deepEqual(Object.fromEntries(got.refused), {
    "pattern other than address equalities": 1,
    "pattern_type not stix": 1,
  });
  // withdrawn by the publisher, not unreadable: counted apart
  assert.deepEqual(Object.fromEntries(got.notInForce), {
    "revoked indicator": 1,
    "expired indicator": 1,
  });
  assert.deepEqual([...parseFeed("{not json", "stix").refused], [["not JSON", 1]]);
});

test("dynamic set file: round trip, expired entries are not live", () => {
  const entries = [
    { entry: "203.0.113.9", expires: 2_000_000_000_000 },
    { entry: "198.51.100.0/24", expires: null },
    { entry: "192.0.2.1", expires: 1_000_000_000_000 },
  ];
  const back = parseDynamicSetFile(formatDynamicSetFile(entries));
  assert.deepEqual(back, entries);
  assert.deepEqual(
    liveEntries(back, 1_500_000_000_000).map((e) => e.entry),
    ["203.0.113.9", "198.51.100.0/24"],
  );
});

function withStore(fn: (dir: string, host: PolicyHost) => void): void {
  const dir = mkdtempSync(join(tmpdir(), "moat-sets-"));
  try {
    mkdirSync(join(dir, "sets"));
    fn(dir, { ...nodeHost, setStore: join(dir, "sets") });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const policy = (sets: string) => `version: 1
mode: prevent
sets:
${sets}
rules:
  - name: banned
    direction: ingress
    action: block
    layer3: { remote: [set:banned] }
`;

test("loader: a dynamic set holds the stored live entries, none before the daemon stored any", () => {
  withStore((dir, host) => {
    const text = policy("  banned: { dynamic: true, timeout: 1h, max_entries: 10 }");
    const before = checkPolicySource(text, join(dir, "p.yaml"), host);
    assert.deepEqual(before.diagnostics, []);
    const set = before.model?.sets.get("banned");
    assert.equal(set?.kind, "empty");
    assert.deepEqual(set?.origin, { kind: "dynamic", timeoutSeconds: 3600, maxEntries: 10 });
    const soon = Date.now() + 3_600_000;
    writeFileSync(
      join(dir, "sets", "banned.dynamic"),
      formatDynamicSetFile([
        { entry: "203.0.113.9", expires: soon },
        { entry: "192.0.2.1", expires: Date.now() - 1000 },
      ]),
    );
    const after = checkPolicySource(text, join(dir, "p.yaml"), host).model?.sets.get("banned");
    assert.deepEqual(
      after?.entries.map((e) => ("text" in e ? e.text : "")),
      ["203.0.113.9"],
    );
  });
});

test("loader: a feed file skips and counts what is not an address, with one warning", () => {
  withStore((dir, host) => {
    writeFileSync(join(dir, "feed.csv"), "ip,score\n203.0.113.9,90\nevil.example,50\n");
    const text = policy(
      "  banned: { file: feed.csv, format: csv, category: botnet, confidence: 80 }",
    );
    const got = checkPolicySource(text, join(dir, "p.yaml"), host);
    assert.deepEqual(
      got.diagnostics.map((d) => [d.severity, d.message]),
      [["warning", "feed 'banned': 1 entry not taken (1 not an address, CIDR or range)"]],
    );
    const set = got.model?.sets.get("banned");
    assert.equal(set?.entries.length, 1);
    assert.deepEqual(set?.origin, {
      kind: "feed",
      format: "csv",
      category: "botnet",
      confidence: 80,
      refused: 1,
    });
    assert.deepEqual(got.model?.setFiles, [join(dir, "feed.csv")]);
  });
});

test("loader: a URL feed reads what the daemon fetched from that URL; a bad URL is an error", () => {
  withStore((dir, host) => {
    const url = "http://127.0.0.1:1/feed.txt";
    const text = policy(`  banned: { url: ${url}, interval: 5m }`);
    writeFileSync(join(dir, "sets", "banned.feed"), "203.0.113.0/24\n");
    writeFileSync(join(dir, "sets", "banned.feed-meta"), JSON.stringify({ url }));
    const got = checkPolicySource(text, join(dir, "p.yaml"), host);
    assert.deepEqual(got.diagnostics, []);
    assert.equal(got.model?.sets.get("banned")?.entries.length, 1);
    assert.equal(got.model?.sets.get("banned")?.origin?.intervalSeconds, 300);
    assert.deepEqual(got.model?.setFiles, []);
    // the stored list came from the URL the set named before: not this feed's, so empty
    const moved = checkPolicySource(
      policy("  banned: { url: http://127.0.0.1:1/other.txt }"),
      join(dir, "p.yaml"),
      host,
    );
    assert.equal(moved.model?.sets.get("banned")?.entries.length, 0);
    const bad = checkPolicySource(
      policy("  banned: { url: ftp://x/feed.txt }"),
      join(dir, "p.yaml"),
      host,
    );
    assert.match(bad.diagnostics[0]?.message ?? "", /not an http:\/\/ or https:\/\/ URL/);
  });
});

test("feedOf: the feed a rule matched through, looked up when the rule names several", () => {
  withStore((dir, host) => {
    writeFileSync(join(dir, "a.txt"), "203.0.113.0/24\n");
    writeFileSync(join(dir, "b.txt"), "2001:db8::/32\n198.51.100.7\n");
    const text = `version: 1
mode: prevent
sets:
  a: { file: a.txt, category: botnet, confidence: 70 }
  b: { file: b.txt, format: plain }
  banned: { dynamic: true }
  corp: [10.0.0.0/8]
rules:
  - name: both
    direction: ingress
    action: block
    layer3: { remote: [set:a, set:b] }
  - name: one
    direction: ingress
    action: block
    layer3: { remote: [set:banned, set:corp] }
  - name: none
    direction: ingress
    action: allow
    layer3: { remote: [set:corp] }
`;
    const model = checkPolicySource(text, join(dir, "p.yaml"), host).model;
    assert.ok(model);
    assert.deepEqual(feedOf(model, "both", "203.0.113.50"), {
      name: "a",
      kind: "feed",
      category: "botnet",
      confidence: 70,
    });
    assert.deepEqual(feedOf(model, "both", "2001:db8::1"), { name: "b", kind: "feed" });
    assert.deepEqual(feedOf(model, "both", "::ffff:198.51.100.7"), { name: "b", kind: "feed" });
    assert.equal(feedOf(model, "both", "192.0.2.1"), null);
    assert.equal(feedOf(model, "one", "10.1.1.1"), null, "matched through corp, not a feed");
    assert.equal(feedOf(model, "none", "10.1.1.1"), null);
    assert.equal(feedOf(model, "defaults.ingress", "10.1.1.1"), null);
  });
});

test("OTel: an event's feed becomes moat.feed.* attributes", () => {
  const event = {
    type: "blocked",
    reason: "new",
    protocol: "tcp",
    direction: "ingress",
    local: { ip: "192.0.2.1", port: 80 },
    remote: { ip: "203.0.113.9", port: 40000 },
    feed: { name: "ioc", kind: "feed", category: "botnet", confidence: 90 },
  } as unknown as MoatEvent;
  const a = eventAttributes(event);
  assert.equal(a["moat.feed.name"], "ioc");
  assert.equal(a["moat.feed.kind"], "feed");
  assert.equal(a["moat.feed.category"], "botnet");
  assert.equal(a["moat.feed.confidence"], 90);
});

test("quarantine: a dynamic set, and an allow rule only with log: true", () => {
  withStore((dir, host) => {
    const rule = (extra: string) => `version: 1
mode: prevent
sets:
  q: { dynamic: true }
  corp: [10.0.0.0/8]
rules:
  - name: r
    direction: egress
    ${extra}
`;
    const ok = checkPolicySource(
      rule("action: block\n    quarantine: { set: q, timeout: 1h }"),
      join(dir, "p.yaml"),
      host,
    );
    assert.deepEqual(ok.diagnostics, []);
    assert.deepEqual(ok.model?.rules[0]?.quarantine, { set: "q", seconds: 3600 });
    const messages = (extra: string) =>
      checkPolicySource(rule(extra), join(dir, "p.yaml"), host).diagnostics.map((d) => d.message);
    assert.deepEqual(messages("action: block\n    quarantine: { set: corp, timeout: 1h }"), [
      "'corp' is not a dynamic set (declare it as { dynamic: true })",
    ]);
    assert.deepEqual(messages("action: allow\n    quarantine: { set: q, timeout: 1h }"), [
      "an allow rule reports its matches only with 'log: true', which quarantine needs",
    ]);
    assert.deepEqual(
      messages("action: allow\n    log: true\n    quarantine: { set: q, timeout: 1h }"),
      [],
    );
    assert.deepEqual(messages("action: block\n    quarantine: { set: q, timeout: 40000d }"), [
      "a timeout of 3456000000 s is over the longest, 100 years (3155760000 s)",
    ]);
  });
});

test("loader: a dynamic set's timeout over 100 years is refused where it is written", () => {
  withStore((dir, host) => {
    const got = checkPolicySource(
      policy("  banned: { dynamic: true, timeout: 40000d }"),
      join(dir, "p.yaml"),
      host,
    );
    assert.deepEqual(
      got.diagnostics.map((d) => [d.path, d.message]),
      [
        [
          "sets.banned.timeout",
          "a timeout of 3456000000 s is over the longest, 100 years (3155760000 s)",
        ],
      ],
    );
  });
});

test("loader: a URL feed's max_bytes over the set-file limit is refused where it is written", () => {
  withStore((dir, host) => {
    const got = checkPolicySource(
      policy("  banned: { url: http://127.0.0.1:1/feed.txt, max_bytes: 134217728 }"),
      join(dir, "p.yaml"),
      host,
    );
    assert.deepEqual(
      got.diagnostics.map((d) => [d.severity, d.path, d.line, d.message]),
      [
        [
          "error",
          "sets.banned.max_bytes",
          4,
          "max_bytes 134217728 is over the largest a stored feed is read at, 67108864 (64 MiB)",
        ],
      ],
    );
    assert.ok((got.diagnostics[0]?.col ?? 0) > 1);
    const most = checkPolicySource(
      policy(`  banned: { url: http://127.0.0.1:1/feed.txt, max_bytes: ${MAX_SET_FILE_BYTES} }`),
      join(dir, "p.yaml"),
      host,
    );
    assert.deepEqual(most.diagnostics, []);
  });
});

test("loader: a stored feed that cannot be read is said, naming the set and why", () => {
  withStore((dir, host) => {
    const url = "http://127.0.0.1:1/feed.txt";
    const stored = join(dir, "sets", "banned.feed");
    writeFileSync(stored, "203.0.113.0/24\n");
    writeFileSync(`${stored}-meta`, JSON.stringify({ url }));
    const failing: PolicyHost = {
      ...host,
      readFile: (path, kind) => {
        if (path === stored) throw new Error("it is over the set-file limit");
        return host.readFile(path, kind);
      },
    };
    const got = checkPolicySource(
      policy(`  banned: { url: ${url} }`),
      join(dir, "p.yaml"),
      failing,
    );
    assert.deepEqual(
      got.diagnostics.map((d) => [d.severity, d.path, d.message]),
      [
        [
          "warning",
          "sets.banned",
          `feed 'banned': the stored list ${stored} cannot be read (it is over the set-file limit): the set is empty here`,
        ],
      ],
    );
  });
});

test("loader: max_entries past what a store file the loader reads can hold is refused", () => {
  withStore((dir, host) => {
    const got = checkPolicySource(
      policy("  banned: { dynamic: true, max_entries: 3000000 }"),
      join(dir, "p.yaml"),
      host,
    );
    assert.deepEqual(
      got.diagnostics.map((d) => [d.severity, d.path, d.line, d.message]),
      [
        [
          "error",
          "sets.banned.max_entries",
          4,
          `max_entries 3000000 is over the most a dynamic set holds, ${MAX_DYNAMIC_ENTRIES}`,
        ],
      ],
    );
    const most = checkPolicySource(
      policy(`  banned: { dynamic: true, max_entries: ${MAX_DYNAMIC_ENTRIES} }`),
      join(dir, "p.yaml"),
      host,
    );
    assert.deepEqual(most.diagnostics, []);
  });
});

test("dynamic set file: a full set of the longest entries fits what the loader reads", () => {
  // a range of two IPv6 addresses in full with an embedded IPv4: the longest entry there is
  const side = "0000:0000:0000:0000:0000:ffff:255.255.255.255";
  const longest = `${side}-${side}`;
  assert.ok(parseAddressEntry(longest).ok);
  const line = formatDynamicSetFile([{ entry: longest, expires: 99_999_999_999_999 }]);
  assert.ok(line.length <= MAX_DYNAMIC_LINE_BYTES, `${line.length}`);
  assert.ok(MAX_DYNAMIC_ENTRIES * MAX_DYNAMIC_LINE_BYTES <= MAX_SET_FILE_BYTES);
});

test("dynamic set file: an entry is never written with a line break in it", () => {
  const text = formatDynamicSetFile([
    { entry: "198.51.100.7\n", expires: 2_000_000_000_000 },
    { entry: "192.0.2.1\n203.0.113.9", expires: null },
    { entry: "1".repeat(200), expires: null },
  ]);
  assert.equal(text, "198.51.100.7 # expires 2000000000\n");
  assert.deepEqual(parseDynamicSetFile(text), [
    { entry: "198.51.100.7", expires: 2_000_000_000_000 },
  ]);
});

test("stix bundle: refusal reasons are moat's words, whatever the feed writes", () => {
  const objects = [];
  for (let i = 0; i < 1000; i++)
    objects.push({ type: "indicator", pattern_type: `p${i}`, pattern: "x" });
  objects.push({ type: "indicator", pattern_type: "x\nmoat: forged line", pattern: "x" });
  objects.push({ type: "indicator", pattern_type: { long: "y".repeat(10_000) }, pattern: "x" });
  const got = feedAddresses(JSON.stringify({ objects }), "stix");
  assert.deepEqual([...got.refused], [["pattern_type not stix", 1002]]);
});

test("stix bundle: the earliest valid_until of the indicators taken is said", () => {
  const now = Date.now();
  const at = (ms: number) => new Date(now + ms).toISOString();
  const objects = [
    { type: "indicator", pattern: "[ipv4-addr:value = '192.0.2.1']", valid_until: at(60_000) },
    { type: "indicator", pattern: "[ipv4-addr:value = '192.0.2.2']", valid_until: at(5_000) },
    { type: "indicator", pattern: "[ipv4-addr:value = '192.0.2.3']" },
    // not taken: its valid_until is no reason to read the feed again
    { type: "indicator", pattern: "[url:value = 'http://x/']", valid_until: at(1_000) },
    { type: "indicator", pattern: "[ipv4-addr:value = '192.0.2.4']", valid_until: "soon" },
  ];
  const got = feedAddresses(JSON.stringify({ objects }), "stix");
  assert.equal(got.until, Date.parse(at(5_000)));
  assert.equal(feedAddresses("192.0.2.1\n", "plain").until, undefined);
});

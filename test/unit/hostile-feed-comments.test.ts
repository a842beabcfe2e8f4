// "#" starts a comment in feed bodies and set files, wherever the line holds one: a line of many
// "#" and a lone carriage return is read in one pass, as a comment. A pattern that ran from each
// "#" to the end stopped at the CR (a line terminator to it), failed, and tried again from the
// next "#": time squared in the line's length (64,000 characters: ~10 s of the daemon that
// fetched the feed), and the comment was kept as the entry.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { feedAddresses, parseFeed } from "../../src/config/feed-parse.ts";
import { checkPolicySource } from "../../src/config/index.ts";
import { nodeHost } from "../../src/host/policy-files.ts";

/** Long enough that a read in squared time takes seconds. */
const HASHES = "#".repeat(40_000);

test("a feed line of '#' then a lone CR is a comment, read in one pass", () => {
  const { entries, refused } = feedAddresses(`203.0.113.9\n${HASHES}\rx\n`, "plain");
  assert.deepEqual(
    entries.map((e) => e.value),
    ["203.0.113.9"],
  );
  assert.equal(refused.size, 0);
});

test("a comment after an entry ends at the '#', whatever follows it on the line", () => {
  const got = parseFeed("203.0.113.9 # seen 2026-01-01\r(c) feed\n198.51.100.7\n", "plain");
  assert.deepEqual(
    got.entries.map((e) => [e.value, e.line, e.col]),
    [
      ["203.0.113.9", 1, 1],
      ["198.51.100.7", 2, 1],
    ],
  );
});

test("a set file line of '#' then a lone CR is a comment", () => {
  const dir = mkdtempSync(join(tmpdir(), "moat-hostile-comments-"));
  try {
    mkdirSync(join(dir, "sets"));
    writeFileSync(join(dir, "list.txt"), `203.0.113.9\n${HASHES}\rx\n`);
    const got = checkPolicySource(
      `version: 1
mode: prevent
sets:
  banned: { file: list.txt }
rules:
  - name: banned
    direction: ingress
    action: block
    layer3: { remote: [set:banned] }
`,
      join(dir, "p.yaml"),
      { ...nodeHost, setStore: join(dir, "sets") },
    );
    assert.deepEqual(got.diagnostics, []);
    assert.equal(got.model?.sets.get("banned")?.entries.length, 1);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// The live console shows text from the network and from processes (paths, DNS names, rule
// names) with control and invisible characters escaped as printable() does, and isolated, so a
// bidi override cannot reorder what the cell or the review entry beside Allow says.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { FlowRow } from "../../src/api/flow-aggregator.ts";
import type { ReviewEntry } from "../../src/api/control.ts";
import { cellTexts, describe as describeEntry } from "../../web/live/shown.ts";

const BIDI = "/tmp/\u202egpj.exe\u061c\u200b";
const SHOWN = "/tmp/\\u202egpj.exe\\u061c\\u200b";

test("flow cells show bidi and invisible characters escaped", () => {
  const r: FlowRow = {
    id: 1,
    identity: `c\u202e / ${BIDI}`,
    process: "x",
    path: BIDI,
    container: null,
    direction: "egress",
    remote: "203.0.113.9",
    names: [`a\u202e.com`],
    port: 443,
    local: "10.0.0.1",
    protocol: "tcp",
    verdict: "blocked",
    rule: "r\u2066",
    types: {},
    count: 1,
    lastSeen: "2026-01-01T00:00:00.000Z",
  };
  const texts = cellTexts(r);
  assert.equal(texts[0], `c\\u202e / ${SHOWN}`);
  assert.equal(texts[1], "a\\u202e.com");
  assert.equal(texts[4], "r\\u2066");
});

test("a review entry's name and path are escaped and set apart", () => {
  const e: ReviewEntry = {
    id: "1",
    direction: "egress",
    protocol: "tcp",
    remote: { ip: "203.0.113.9", names: ["moc.\u202eevil"] },
    port: 443,
    process: { path: BIDI, name: "p", user: 0 },
    verdict: "blocked",
    first: "",
    last: "",
    count: 2,
  };
  const parts = describeEntry(e);
  const outside = parts.filter((p) => typeof p !== "string").map((p) => p.outside);
  assert.deepEqual(outside, ["moc.\\u202eevil", SHOWN]);
  const text = parts.map((p) => (typeof p === "string" ? p : p.outside)).join("");
  assert.equal(text, `blocked egress tcp moc.\\u202eevil (203.0.113.9):443 by ${SHOWN}, ×2`);
});

test("the live view's cells of outside text are bidi-isolated", () => {
  const css = readFileSync(join(import.meta.dirname, "../../web/live/live.css"), "utf8");
  assert.match(css, /unicode-bidi:\s*isolate/);
});

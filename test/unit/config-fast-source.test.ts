// The fast reader (src/config/fast-source.ts) and the lean one (src/config/lean-source.ts, whose
// positions are worked out from a second read when one is asked for) give the same data and the same
// position for every key and value as the yaml library's PolicySource, and give up on what they
// cannot read faithfully.

import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { readFast } from "../../src/config/fast-source.ts";
import { readLean } from "../../src/config/lean-source.ts";
import { plainPos } from "../../src/config/positions.ts";
import { checkPolicySource, formatDiagnostic, textOnlyHost } from "../../src/config/index.ts";
import { PolicySource, type PathSegment } from "../../src/config/yaml-source.ts";
import { mixedPolicy } from "../../bench/compile.ts";

/** Every path in the data, containers and leaves. */
function paths(data: unknown, at: PathSegment[] = []): PathSegment[][] {
  const out = [at];
  if (Array.isArray(data)) data.forEach((v, i) => out.push(...paths(v, [...at, i])));
  else if (data && typeof data === "object")
    for (const [k, v] of Object.entries(data)) out.push(...paths(v, [...at, k]));
  return out;
}

type Reader = typeof readFast | typeof readLean;

function assertSame(name: string, text: string, read: Reader = readFast): void {
  const fast = read(name, text);
  assert.ok(fast, `${name}: the ${read.name} reader gave up`);
  const slow = new PolicySource(name, text);
  assert.deepEqual(fast.data, slow.data, name);
  const missing = [["no-such-key"], ["rules", 1e6], ["no", "such", 1, "path"], ["version", "x"]];
  for (const path of [...paths(slow.data), ...missing]) {
    const where = path.join(".");
    assert.deepEqual(plainPos(fast.pos(path)), slow.pos(path), `${name} value at ${where}`);
    assert.deepEqual(plainPos(fast.keyPos(path)), slow.keyPos(path), `${name} key at ${where}`);
  }
}

const FILES = [
  ...readdirSync("examples").map((f) => `examples/${f}`),
  ...readdirSync("test/fixtures/policies").map((f) => `test/fixtures/policies/${f}`),
].filter((f) => f.endsWith(".yaml"));

for (const read of [readFast, readLean])
  test(`${read.name}: every example and fixture: same data, same positions`, () => {
    let read_ = 0;
    for (const file of FILES) {
      const text = readFileSync(file, "utf8");
      if (read(file, text) === undefined) continue; // read another way
      assertSame(file, text, read);
      read_++;
    }
    assert.ok(read_ > FILES.length / 2, `${read.name} read ${read_} of ${FILES.length} files`);
    assertSame("mixed.yaml", mixedPolicy(200), read);
  });

test("layouts: comments, flow and block styles, quotes, block scalars, empty values, CRLF", () => {
  const cases = [
    "# head\n\nversion: 1 # one\nmode: detect\n",
    "---\nversion: 1\nrules:\n- name: a\n  action: allow\n",
    "version: 1\nrules:\n  -   name: 'q''s'\n      direction:   ingress\n      layer4: {protocol: tcp, port: [22, \"80-90\"]}\n",
    "version: 1\nrules:\n  - name: a\n    layer4:\n      port:\n      protocol: tcp\n    note: |\n      text\n      more\n    other: >-\n      folded\n",
    "version: 1\r\nrules:\r\n  - name: a\r\n    action: block\r\n",
    'version: 1\nsets:\n  web: [\n    10.0.0.0/8,\n    # a comment\n    "192.0.2.1"\n  ]\n  ports:\n    - 80\n    - 0x1F\n',
    "version: 1\nrules:\n  - { name: a, layer3: { remote: [1.2.3.4] } }\n  - name: b\n",
    `version: 1\n${Array.from({ length: 40 }, (_, i) => `k${i}: ${i}`).join("\n")}\n`,
    "version: 1\nport: 1_000\nlist:\n  - [1, [2]]\n  - {a: {b: c}}\n  - 7\n",
    'version: 1\nrules:\n  - name: "multi\n      line"\n    plain: a\n      b\n',
  ];
  cases.forEach((text, i) => assertSame(`case${i}.yaml`, text));
  cases.forEach((text, i) => {
    if (readLean(`case${i}.yaml`, text)) assertSame(`case${i}.yaml`, text, readLean);
  });
  // the lean reader reads a number YAML 1.2 does not know as the string the yaml library gives
  assertSame("case8.yaml", cases[8] ?? "", readLean);
});

test("gives up where the two libraries could differ", () => {
  const slowOnly = [
    "version: 1\nrules: !!seq []\n",
    "version: 1\nsets:\n  a: &x [1]\n  b: *x\n",
    "version: 1\nlayer3: { remote: [!10.0.0.0/8] }\n",
    "? version\n: 1\n",
    "%YAML 1.2\n---\nversion: 1\n",
    "version: 1\n---\nversion: 2\n",
    "version: 1\n1: a\n",
    "\ufeffversion: 1\n",
    "version: 1\nversion: 2\n",
    "version: [1\n",
    "",
  ];
  for (const text of slowOnly) {
    assert.equal(readFast("p.yaml", text), undefined, text);
    assert.equal(readLean("p.yaml", text), undefined, text);
  }
  const leanGivesUp = [
    "version: 1\ntrue: a\n",
    "version: 1\nnull: a\n",
    "version: 1\n~: a\n",
    "version: 1\n0x1F: a\n",
    "version: 1\n.inf: a\n",
    "version: 1\nrules:\n  - name: a\n    nested: {1: x}\n",
    'version: 1\nsets:\n  a: &x [1]\n  b: {"c":*x}\n',
    "version: 1\n? a\n: b\n",
    "version: 1\nkey : value\n",
  ];
  for (const text of leanGivesUp) assert.equal(readLean("p.yaml", text), undefined, text);
});

test("a file too large to read again with the yaml library: its error at FILE:LINE:COL all the same", () => {
  const rule = "  - name: r7000\n    direction: ingress\n";
  const text = mixedPolicy(8000).replace(rule, "  - name: r7000\n    direction: sideways\n");
  assert.ok(text.length > 2 ** 20 && readLean("big.yaml", text), "read the lean way, not again");
  const line = text.slice(0, text.indexOf("direction: sideways")).split("\n").length;
  const { model, diagnostics } = checkPolicySource(text, "big.yaml", textOnlyHost);
  assert.equal(model, undefined);
  const lines = diagnostics.map(formatDiagnostic);
  assert.ok(
    lines.some((l) => l.startsWith(`big.yaml:${line}:16 rules[7000].direction: must be one of`)),
    lines.join("\n"),
  );
});

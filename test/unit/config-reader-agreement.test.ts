// Whichever reader reads a policy (block, lean, fast, the yaml library), it means the same, and
// text that would make them disagree is refused with its FILE:LINE:COL: a carriage return alone;
// numbers YAML 1.2 reads that js-yaml's core schema does not. Nesting past the limit is refused
// from the text before the yaml library builds a tree of it (a few megabytes of `[` would take
// gigabytes), pointing at the first level too deep. Positions of files over the re-read size
// are plain positions in every message.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readBlockYaml } from "../../src/config/block-yaml.ts";
import { readFast } from "../../src/config/fast-source.ts";
import { readLean, readLeanData } from "../../src/config/lean-source.ts";
import { PolicySource } from "../../src/config/yaml-source.ts";
import { checkPolicySource, textOnlyHost } from "../../src/config/index.ts";

const check = (text: string) => checkPolicySource(text, "p.yaml", textOnlyHost);
const errors = (text: string) =>
  check(text)
    .diagnostics.filter((d) => d.severity === "error")
    .map((d) => `${d.file}:${d.line}:${d.col} ${d.path}: ${d.message}`);

const LONE_CR = "a carriage return not followed by a line feed";

test("a lone carriage return is refused where it is, whatever else the file holds", () => {
  const base = "version: 1\n# note\rmode: prevent\ndefaults: { ingress: block, egress: allow }\n";
  const anchored = base.replace("defaults: {", "defaults: &d {");
  for (const text of [base, anchored]) {
    assert.equal(readBlockYaml(text), undefined);
    assert.equal(readLeanData(text), undefined);
    assert.equal(readFast("p.yaml", text), undefined);
    const r = check(text);
    assert.equal(r.model, undefined, JSON.stringify(text));
    const errs = errors(text);
    assert.equal(errs.length, 1, errs.join("\n"));
    assert.match(errs[0] ?? "", new RegExp(`^p\\.yaml:2:7 \\(yaml\\): ${LONE_CR}`));
  }
  // in a value, quoted or not, and the last character of the file
  for (const [text, at] of [
    ['version: 1\nmode: detect\nrules:\n  - name: "a\rb"\n', "4:13"],
    ["version: 1\nmode: detect\nrules:\n  - name: a\rb\n", "4:12"],
    ["version: 1\nmode: detect\r", "2:13"],
  ] as const) {
    const errs = errors(text);
    assert.equal(errs.length, 1, errs.join("\n"));
    assert.ok(errs[0]?.startsWith(`p.yaml:${at} (yaml): ${LONE_CR}`), errs[0]);
  }
  // CRLF line ends are read as before
  const crlf = "version: 1\r\nmode: prevent\r\ndefaults: { ingress: block, egress: allow }\r\n";
  assert.equal(check(crlf).model?.mode, "prevent");
  assert.equal(check(crlf.replace("defaults: {", "defaults: &d {")).model?.mode, "prevent");
});

test("a lone carriage return in a file over the re-read size is refused too", () => {
  const pad = `# ${"x".repeat(1_100_000)}\n`;
  const errs = errors(`${pad}version: 1\nmode: detect # a\rb\n`);
  assert.equal(errs.length, 1, errs.join("\n"));
  assert.ok(errs[0]?.startsWith(`p.yaml:3:17 (yaml): ${LONE_CR}`), errs[0]);
});

test("numbers with a sign before their point are numbers to every reader", () => {
  for (const v of ["-.5", "+.5", "+.5e3", "-.5E-2", "+.inf", "-.Inf"]) {
    for (const text of [`version: 1\nx: ${v}\n# & b\n`, `version: 1\n${v}: a\n# & b\n`]) {
      const slow = new PolicySource("p.yaml", text);
      const fast = readFast("p.yaml", text);
      if (fast) assert.deepStrictEqual(fast.data, slow.data, JSON.stringify(text));
      const lean = readLean("p.yaml", text);
      if (lean) assert.deepStrictEqual(lean.data, slow.data, JSON.stringify(text));
    }
  }
  // quoted, they stay strings (and the fast reader still reads them)
  const quoted = `version: 1\nx: "+.5"\ny: '-.5'\n# & b\n`;
  assert.deepStrictEqual(readFast("p.yaml", quoted)?.data, { version: 1, x: "+.5", y: "-.5" });
});

test("a comment does not decide whether a policy with +.5 is accepted", () => {
  const rule =
    "rules:\n  - name: r\n    direction: egress\n    action: allow\n    process: { name: +.5, user: [root] }\n";
  const plain = `version: 1\nmode: prevent\nattach: { cgroup: / }\n${rule}`;
  const commented = `version: 1\nmode: prevent\nattach: { cgroup: / }\n# web & ssh\n${rule}`;
  const a = errors(plain);
  const b = errors(commented);
  assert.equal(a.length, 1, a.join("\n"));
  assert.match(a[0] ?? "", /rules\[0\]\.process\.name: must be a string .*got 0\.5/);
  assert.deepEqual(
    b.map((e) => e.replace(/:\d+:/, ":")),
    a.map((e) => e.replace(/:\d+:/, ":")),
  );
});

const TOO_DEEP = "(yaml): the document is nested more than 64 levels deep";

test("deep flow nesting is refused at its 65th level, fast and once", () => {
  for (const n of [100, 10_000, 1_000_000]) {
    for (const closed of [true, false]) {
      const text = `version: 1\nx: ${"[".repeat(n)}${closed ? "]".repeat(n) : ""}\n`;
      const t0 = performance.now();
      const errs = errors(text);
      const ms = performance.now() - t0;
      assert.deepEqual(errs, [`p.yaml:2:67 ${TOO_DEEP}`], `${n} ${closed}`);
      assert.ok(ms < 5_000, `${n} levels took ${Math.round(ms)} ms`);
    }
  }
  // short of the limit, an unclosed bracket is one error, not one per level
  const open50 = errors(`version: 1\nx: ${"[".repeat(50)}\n`);
  assert.equal(open50.length, 1, open50.join("\n"));
  const maps = `version: 1\nx: ${"{a: ".repeat(200_000)}1${"}".repeat(200_000)}\n`;
  assert.deepEqual(errors(maps), [`p.yaml:2:${4 + 63 * 4} ${TOO_DEEP}`]);
});

test("deep block nesting is refused at its 65th level", () => {
  let lines = "version: 1\n";
  for (let i = 0; i < 3000; i++) lines += `${" ".repeat(i)}a:\n`;
  assert.deepEqual(errors(lines), [`p.yaml:66:65 ${TOO_DEEP}`]);
  const dashes = `version: 1\nx:\n${"- ".repeat(100_000)}a\n`;
  assert.deepEqual(errors(dashes), [`p.yaml:3:127 ${TOO_DEEP}`]);
  // a map at the column of the list it holds counts once each
  let mixed = "version: 1\n";
  for (let i = 0; i < 100; i++) mixed += `${" ".repeat(2 * i)}a:\n${" ".repeat(2 * i)}- b: 1\n`;
  assert.deepEqual(errors(mixed), [`p.yaml:65:65 ${TOO_DEEP}`]);
});

test("up to 64 levels is not too deep; brackets in quotes, comments and scalars are not levels", () => {
  const ok = (text: string) => {
    for (const e of errors(text)) assert.ok(!e.includes("nested more than"), e);
  };
  ok(`version: 1\nx: ${"[".repeat(63)}${"]".repeat(63)}\n`);
  assert.deepEqual(errors(`version: 1\nx: ${"[".repeat(64)}${"]".repeat(64)}\n`), [
    `p.yaml:2:67 ${TOO_DEEP}`,
  ]);
  const many = "[".repeat(100);
  ok(
    `version: 1\n# ${many}\nx: "${many}"\ny: '${many}'\nz: a${many}\nw: |\n  ${many}\n  - - - - -\n`,
  );
  ok(`version: 1\nx: "a\n  ${many}"\ny: [a, '${many}', "}}}"]\n`);
  // a quote inside a plain scalar starts nothing: what follows still counts
  assert.deepEqual(errors(`version: 1\nx: it's\ny: ${"[".repeat(100)}${"]".repeat(100)}\n`), [
    `p.yaml:3:67 ${TOO_DEEP}`,
  ]);
  // nor does a # without a blank before it
  assert.deepEqual(errors(`version: 1\nx: [a#${"[".repeat(100)}${"]".repeat(101)}\n`), [
    `p.yaml:2:69 ${TOO_DEEP}`,
  ]);
});

test("a file over the re-read size missing a required property names where", () => {
  let text = "version: 1\nmode: prevent\nrules:\n";
  for (let i = 0; i < 20_000; i++)
    text += `  - name: r${i}\n    direction: ingress\n    action: allow\n    layer4: { protocol: tcp, port: [${1 + i}] }\n`;
  text += "  - name: last\n    direction: ingress\n";
  assert.ok(text.length > 2 ** 20);
  // read by the block reader, and by the fast one (the comment makes the others give up)
  for (const t of [text, text.replace("rules:", "rules: # & b")]) {
    const r = check(t);
    const missing = r.diagnostics.filter((d) => d.message.includes("missing required"));
    assert.equal(missing.length, 1);
    const d = missing[0];
    assert.deepEqual(
      { file: d?.file, line: d?.line, col: d?.col, path: d?.path },
      { file: "p.yaml", line: 80004, col: 5, path: "rules[20000].action" },
    );
    assert.deepEqual(Object.keys(d ?? {}).sort(), [
      "col",
      "file",
      "line",
      "message",
      "path",
      "severity",
    ]);
  }
});

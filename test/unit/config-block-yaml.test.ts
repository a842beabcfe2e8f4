// The block reader (src/config/block-yaml.ts) either gives up or builds the very data js-yaml builds
// for the lean reader (readLeanData), keys in the same order, for every example and fixture,
// generated policies and thousands of random mutations of them; and messages (FILE:LINE:COL) are
// the same whether it read the file or js-yaml did.

import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { load } from "js-yaml";
import { readBlockYaml } from "../../src/config/block-yaml.ts";
import { plainScalar } from "../../src/config/core-scalar.ts";
import { LEAN_SCHEMA, readLean, readLeanData } from "../../src/config/lean-source.ts";
import { leanUnsafe } from "../../src/config/lean-unsafe.ts";
import { checkPolicySource, formatDiagnostic, textOnlyHost } from "../../src/config/index.ts";
import { mixedPolicy, random } from "../../bench/compile.ts";

/** The lean reader's own first check (lean-source.ts), which leanUnsafe must flag too. */
const UNSAFE_TEXT =
  // eslint-disable-next-line no-control-regex -- it looks for control characters
  /^\ufeff|[\u0000\ufffd]|^%|(?:^|[\s[{,]|["']:)[!&*?%]|(?:^|[\s[{,])~?[ \t]*:(?:[ \t\r\n]|$)/m;

function yamlFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = `${dir}/${name}`;
    if (statSync(path).isDirectory()) return yamlFiles(path);
    return /\.ya?ml$/.test(name) ? [path] : [];
  });
}

/** Policies written inline in the unit tests (those without interpolation or escapes). */
function inlinePolicies(): string[] {
  const out: string[] = [];
  for (const name of readdirSync("test/unit")) {
    if (!name.endsWith(".ts")) continue;
    const source = readFileSync(`test/unit/${name}`, "utf8");
    for (const m of source.matchAll(/`([^`$\\]*version: 1[^`$\\]*)`/g)) out.push(m[1] ?? "");
  }
  return out;
}

const FILES = [...yamlFiles("examples"), ...yamlFiles("test")];
const CORPUS = [
  ...FILES.map((file) => readFileSync(file, "utf8")),
  ...inlinePolicies(),
  mixedPolicy(50),
];

/**
 * Whether the block reader gave up (false) or read the text as js-yaml does (true); anything else
 * fails. The keys' order counts too: the checks walk the data in it.
 */
function sameOrGaveUp(text: string, what: string): boolean {
  const own = readBlockYaml(text);
  if (UNSAFE_TEXT.test(text)) assert.ok(leanUnsafe(text), `${what}: leanUnsafe missed it`);
  if (own === undefined) return false;
  const lean = readLeanData(text);
  assert.notEqual(lean, undefined, `${what}: read, where the lean reader gives up`);
  assert.deepStrictEqual(own, lean, what);
  assert.equal(JSON.stringify(own), JSON.stringify(lean), `${what}: keys' order`);
  return true;
}

test("every example and YAML fixture: the same data, or given up", () => {
  const read = FILES.filter((file) => sameOrGaveUp(readFileSync(file, "utf8"), file));
  // the one it leaves is semantic-errors.yaml, which has an anchor (the lean reader gives up too)
  assert.ok(read.length >= FILES.length - 1, `read ${read.length} of ${FILES.length}`);
  const inline = inlinePolicies();
  const inlineRead = inline.filter((text, i) => sameOrGaveUp(text, `inline ${i}`));
  assert.ok(inlineRead.length > inline.length * 0.8, `${inlineRead.length} of ${inline.length}`);
});

test("generated policies, up to 10k rules: the same data", () => {
  for (const count of [1, 7, 500, 10_000])
    assert.ok(sameOrGaveUp(mixedPolicy(count), `mixed ${count}`), `gave up on ${count} rules`);
  const crlf = mixedPolicy(500).replace(/\n/g, "\r\n");
  assert.ok(sameOrGaveUp(crlf, "mixed 500, CRLF"), "gave up on CRLF line ends");
});

test("layouts it reads: the same data", () => {
  const cases = [
    "version: 1\n",
    "---\nversion: 1 # one\n",
    "--- # doc\n# head\n\nversion: 1\n\n\nmode: detect   \n",
    "version: 1\nrules:\n- name: a\n  action: allow\n-\n  name: b\n- \n-   name: 'q''s'\n    x: ''\n",
    "version: 1\nrules:\n  - name: a\n    layer4:\n      port:\n      protocol: tcp\n    z: null\n",
    'version: 1\nsets:\n  web: [\n    10.0.0.0/8,\n    # a comment\n    "192.0.2.1",\n  ]\n  p:\n    [80, 443]\n',
    "version: 1\nrules:\n  - { name: a, layer3: { remote: [1.2.3.4] } }\n  - {\n      name: b,\n    }\n",
    "version: 1\nlist:\n  - [1, [2], []]\n  - {a: {b: c}, d: {}}\n  - 7\n  - -7\n  - 0x1F\n  - 0o17\n  - 1e3\n",
    "version: 1\nv: [.inf, -.Inf, .NaN, +1, -0, 007, 1_000, 12:30, ~, Null, TRUE, yes, off, 3.]\n",
    "version: 1\nname: a#b c, d] {e} 'f' \"g\"\nurl: http://x:80/p?q#f\nk: set:blocklist\n",
    "version: 1\nnames:\n  - \"*.example.org\"\n  - 'it''s'\n  - é ü 名前\n  - \"trailing  \"\n",
    "version: 1\nlast: no newline",
    "version: 1\nseq:\n- a\n- b\nnext: c\n",
    "version: 1\nx:\n  y: 1\n  z:\n  - 2\n",
    "version: 1\r\nrules:\r\n  - name: a # c\r\n    port: [80,\r\n      443]\r\n",
  ];
  for (const [i, text] of cases.entries()) assert.ok(sameOrGaveUp(text, `case ${i}`), `case ${i}`);
});

test("gives up on what it does not read", () => {
  const cases = [
    "version: 1\nrules: !!seq []\n",
    "version: 1\nsets:\n  a: &x [1]\n  b: *x\n",
    "version: 1\nnote: |\n  text\n",
    "version: 1\nnote: >-\n  folded\n",
    "version: 1\nname: a\n  b\n",
    'version: 1\nname: "a\n  b"\n',
    "version: 1\nname: 'a\n  b'\n",
    'version: 1\nname: "a\\nb"\n',
    "? version\n: 1\n",
    "[a]: 1\n",
    "version: 1\n---\nversion: 2\n",
    "version: 1\n...\n",
    "%YAML 1.2\n---\nversion: 1\n",
    "version: 1\nrules:\n\t- a\n",
    "version: 1\nversion: 2\n",
    "version: 1\nx: {a: 1, a: 2}\n",
    "version: 1\rmode: detect\r",
    "version: 1\r\nmode: detect\r",
    "\ufeffversion: 1\n",
    "version: 1\n1: a\n",
    "version: 1\n'true': a\n",
    "version: 1\n__proto__: a\n",
    "version: 1\n<<: {a: 1}\n",
    "version: 1\nkey : value\n",
    "version: 1\nx: [a: 1]\n",
    "version: 1\nx: [a,, b]\n",
    "version: 1\nx: [a\n  b]\n",
    "version: 1\nx: [a,\nb]\n",
    "version: 1\nx: a: b\n",
    "version: 1\n- a\n",
    "- a\n",
    "just text\n",
    "",
    "# only a comment\n",
    "  version: 1\n",
    "version: 1\nx:\n    a: 1\n  b: 2\n",
    "version: 1\nx:\n- - a\n",
  ];
  for (const text of cases) assert.equal(readBlockYaml(text), undefined, JSON.stringify(text));
});

test("plain scalars mean what they mean to js-yaml with the lean schema", () => {
  const rand = random(3);
  const alphabet = "0123456789+-._eExXoOabcfinINFaAtTrRuUlLsS~:";
  const samples = [
    "0",
    "-0",
    "+0",
    "007",
    "0x1F",
    "0X1F",
    "0xg",
    "0o17",
    "0o8",
    "0b101",
    "1e3",
    "1E-3",
    "1.",
    ".5",
    "-.5",
    "1_000",
    ".inf",
    "-.inf",
    "+.INF",
    ".Inf",
    ".iNf",
    ".nan",
    ".NaN",
    "-.nan",
    "~",
    "null",
    "Null",
    "NULL",
    "nULL",
    "true",
    "True",
    "TRUE",
    "tRUE",
    "false",
    "yes",
    "no",
    "on",
    "off",
    "y",
    "n",
    "12:30",
    "2001-12-14",
    "123456789012345",
    "1234567890123456789",
    "9007199254740993",
  ];
  for (let i = 0; i < 3000; i++) {
    let s = "";
    const n = 1 + Math.floor(rand() * 6);
    for (let j = 0; j < n; j++) s += alphabet[Math.floor(rand() * alphabet.length)];
    samples.push(s);
  }
  for (const s of samples) {
    let expected: unknown;
    try {
      expected = (load(`v: ${s}\n`, { schema: LEAN_SCHEMA }) as { v: unknown }).v;
    } catch {
      continue; // not a plain scalar there (the reader gives up on those)
    }
    assert.deepStrictEqual(plainScalar(s), expected, JSON.stringify(s));
  }
});

/** Odd things to put in a text: syntax it gives up on, scalars YAML reads in its own ways. */
const INSERTS = [
  "&a ",
  "*a",
  "!!str ",
  "!t ",
  "# c",
  " # c",
  "#",
  '"',
  "'",
  "\t",
  " ",
  "  ",
  "\r",
  "\r\n",
  "\ufeff",
  "0x10",
  "1e3",
  ".inf",
  "-.Inf",
  ".NaN",
  "~",
  "yes",
  "no",
  "null",
  "Null",
  "true",
  "False",
  '"a\\nb"',
  "'it''s'",
  "a: b",
  "k: v: w",
  "? ",
  "- ",
  "-",
  "[",
  "]",
  "{",
  "}",
  ",",
  "|",
  ">",
  "---",
  "...",
  "%YAML 1.2",
  "0o17",
  "+12",
  "-0",
  "007",
  "1_000",
  "12:30",
  "<<: ",
  "__proto__",
  ":",
  ": ",
  "@",
  "`",
  "\\",
  "é",
  "\u2028",
  "\u00a0",
  "😀",
  "\u0085",
  "\u007f",
  "\u0000",
  "\ufffd",
  "[a, b]",
  "{a: 1}",
  "{a: 1,}",
  "[1,]",
  "\n",
  "\n  ",
  "\n- ",
  "\n#",
  "'",
  '""',
  "''",
];

function mutate(text: string, rand: () => number): string {
  const pick = <T>(list: readonly T[]): T => list[Math.floor(rand() * list.length)] as T;
  const lines = text.split("\n");
  const line = Math.floor(rand() * lines.length);
  const at = (s: string): number => Math.floor(rand() * (s.length + 1));
  const l = lines[line] ?? "";
  switch (Math.floor(rand() * 12)) {
    case 0: // indentation
      lines[line] = pick(["", " ", "  ", "   ", "    ", "\t"]) + l.trimStart();
      break;
    case 1: // anywhere on a line
    case 2: {
      const p = at(l);
      lines[line] = l.slice(0, p) + pick(INSERTS) + l.slice(p);
      break;
    }
    case 3: // a value replaced
      lines[line] = l.replace(/: .*$/, `: ${pick(INSERTS)}`);
      break;
    case 4: // after the indentation
      lines[line] = l.replace(/^( *(?:- )?)/, `$1${pick(INSERTS)}`);
      break;
    case 5: // a line twice (a duplicate key), or gone
      if (rand() < 0.5) lines.splice(line, 0, l);
      else lines.splice(line, 1);
      break;
    case 6: // split at a blank, or joined with the next
      if (rand() < 0.5) {
        const p = l.indexOf(" ", at(l));
        if (p >= 0)
          lines[line] = `${l.slice(0, p)}\n${" ".repeat(Math.floor(rand() * 8))}${l.slice(p + 1)}`;
      } else lines.splice(line, 2, l + (lines[line + 1] ?? ""));
      break;
    case 7: // trailing blanks, or a comment
      lines[line] = l + pick(["  ", " # c", "#c", " #", "\t"]);
      break;
    case 8: // a line's dash
      lines[line] = l.startsWith("  - ") ? `    ${l.slice(4)}` : l.replace(/^( *)/, "$1- ");
      break;
    case 9: // quotes
      lines[line] = l.replace(/: ([^ ].*)$/, (_, v: string) =>
        rand() < 0.5 ? `: "${v}"` : `: '${v.replace(/'/g, "''")}'`,
      );
      break;
    case 10: // the whole text: CRLF, a BOM, no final newline, a document marker
      return pick([
        text.replace(/\n/g, "\r\n"),
        `\ufeff${text}`,
        text.trimEnd(),
        `---\n${text}`,
        `--- \n${text}`,
        `${text}...\n`,
        `${text}---\n`,
      ]);
    default: {
      // a key made odd
      lines[line] = l.replace(
        /([\w-]+):/,
        `${pick(["1", "true", "~", "'a:b'", '"x y"', "a b", "a:b", "-k", "?k"])}:`,
      );
    }
  }
  return lines.join("\n");
}

test("thousands of random mutations: the same data, or given up", () => {
  const rand = random(11);
  const bases = CORPUS.filter((t) => t.length < 20_000);
  let read = 0;
  let leanRead = 0;
  for (let i = 0; i < 4000; i++) {
    let text = bases[i % bases.length] ?? "";
    const rounds = 1 + Math.floor(rand() * 3);
    for (let r = 0; r < rounds; r++) text = mutate(text, rand);
    if (sameOrGaveUp(text, `mutant ${i}: ${JSON.stringify(text.slice(0, 2000))}`)) read++;
    if (readLeanData(text) !== undefined) leanRead++;
  }
  // it reads most of what js-yaml reads: the check is not one that passes by giving up
  assert.ok(read > leanRead * 0.7, `read ${read}, js-yaml ${leanRead}`);
});

/** The messages and the rules a check of the file gives, as a user sees them. */
function outcome(text: string, file: string): string[] {
  let check: ReturnType<typeof checkPolicySource>;
  try {
    check = checkPolicySource(text, file, textOnlyHost);
  } catch (e) {
    return [`threw ${String(e)}`]; // (a check that throws should throw the same)
  }
  const { model, diagnostics } = check;
  const rules = model?.rules.map((r) => `${r.name} ${r.action} ${r.pos.line}:${r.pos.col}`) ?? [];
  return [...diagnostics.map(formatDiagnostic), ...rules];
}

/**
 * The same text with a last comment line holding a tab: the block reader gives up on it, js-yaml
 * reads the same data at the same places.
 */
const READ_BY_JS_YAML = "\n#\t\n";

test("messages and positions: the same whether it or js-yaml read the file", () => {
  const rand = random(5);
  const texts: string[] = [...CORPUS.filter((t) => t.length < 20_000)];
  for (let i = 0; texts.length < 400 && i < 5000; i++) {
    const text = mutate(CORPUS[i % CORPUS.length] ?? "", rand);
    if (readBlockYaml(text) !== undefined) texts.push(text);
  }
  for (const [i, text] of texts.entries()) {
    if (readBlockYaml(text) === undefined) continue;
    assert.equal(readBlockYaml(text + READ_BY_JS_YAML), undefined);
    assert.ok(readLean("p.yaml", text + READ_BY_JS_YAML) !== undefined);
    assert.deepEqual(
      outcome(text, "p.yaml"),
      outcome(text + READ_BY_JS_YAML, "p.yaml"),
      `text ${i}`,
    );
  }
});

test("a file too large to read again with the yaml library: its errors the same", () => {
  const text = mixedPolicy(8000)
    .replace(
      "  - name: r7000\n    direction: ingress\n",
      "  - name: r7000\n    direction: sideways\n",
    )
    .replace("    action: allow\n", "    action: permit\n")
    .replace("layer4: { protocol: tcp, port: [", "layer4: { protocol: tcp, port: [70000, ");
  assert.ok(text.length > 2 ** 20 && readBlockYaml(text) !== undefined);
  const mine = outcome(text, "big.yaml").filter((l) => !/^r\d+ /.test(l));
  assert.ok(
    mine.some((l) => l.includes("rules[7000].direction: must be one of")),
    mine.join("\n"),
  );
  assert.deepEqual(
    mine,
    outcome(text + READ_BY_JS_YAML, "big.yaml").filter((l) => !/^r\d+ /.test(l)),
  );
});

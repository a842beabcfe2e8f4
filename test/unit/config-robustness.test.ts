// Hostile policy files give one clear diagnostic each, never an internal error (exit 70): alias
// bombs, deep nesting, binary content, several documents, files over the size limit. Diagnostics
// are capped in number, values in length, and control characters are escaped wherever a person
// reads them (diagnostics, event lines on stdout and in the audit log, `moat top`).
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { checkCommand } from "../../src/cli/commands/check.ts";
import { stdoutSink } from "../../src/observe/stdout-sink.ts";
import { auditSink } from "../../src/observe/audit-sink.ts";
import { emptyTop, renderTop, tally } from "../../src/cli/top-view.ts";
import { fakeEvent } from "../helpers/events.ts";

function scratch(t: { after: (fn: () => void) => void }): string {
  const d = mkdtempSync(join(tmpdir(), "moat-robust-"));
  t.after(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

async function check(path: string): Promise<{ code: number; lines: string[] }> {
  const lines: string[] = [];
  const io = { out: (l: string) => lines.push(l), err: (l: string) => lines.push(l) };
  const code = await checkCommand.run({ values: {}, positionals: [path] }, io);
  return { code, lines };
}

async function oneError(t: { after: (fn: () => void) => void }, content: string | Buffer) {
  const path = join(scratch(t), "policy.yaml");
  writeFileSync(path, content);
  const r = await check(path);
  assert.equal(r.code, 1, r.lines.join("\n"));
  assert.equal(r.lines.length, 2, r.lines.join("\n"));
  assert.equal(r.lines[1], `${path}: 1 error`);
  return (r.lines[0] ?? "").slice(path.length);
}

test("a YAML alias bomb is one error, not an internal error", async (t) => {
  const levels = ["a: &a [x, x, x, x, x, x, x, x, x]"];
  for (const [i, name] of ["b", "c", "d", "e", "f", "g", "h"].entries()) {
    const prev = "abcdefg"[i];
    levels.push(`${name}: &${name} [${Array(9).fill(`*${prev}`).join(", ")}]`);
  }
  const line = await oneError(t, `version: 1\nmode: detect\n${levels.join("\n")}\n`);
  assert.match(
    line,
    /^:\d+:\d+ \(yaml\): the document expands aliases too often \(at most 1000\); write the values out/,
  );
});

test("an alias inside the node it names is one error, not a document without end", async (t) => {
  const rule = `rules:\n  - &r\n    name: a\n    direction: ingress\n    action: allow\n    x:`;
  for (const [tail, col] of [
    [" *r", 8],
    [" [*r]", 9],
    ["\n      y: { z: [1, *r] }", 19],
  ] as const) {
    const line = await oneError(t, `version: 1\nmode: detect\n${rule}${tail}\n`);
    assert.match(
      line,
      new RegExp(
        `^:\\d+:${col} \\(yaml\\): the alias \\*r is inside the node it names \\(a document without end\\); write the value out$`,
      ),
      tail,
    );
  }
});

test("deep nesting is one error", async (t) => {
  const line = await oneError(
    t,
    `version: 1\nmode: detect\nx: ${"[".repeat(5000)}${"]".repeat(5000)}\n`,
  );
  assert.match(line, /^:3:\d+ \(yaml\): the document is nested more than 64 levels deep$/);
});

test("nesting a little too deep for moat but not for the parser is one error too", async (t) => {
  const line = await oneError(
    t,
    `version: 1\nmode: detect\nx: ${"[".repeat(100)}${"]".repeat(100)}\n`,
  );
  assert.match(line, /^:3:\d+ \(yaml\): the document is nested more than 64 levels deep$/);
});

test("a binary file is one error", async (t) => {
  const bytes = Buffer.alloc(1024);
  for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 37) & 0xff;
  const line = await oneError(t, bytes);
  assert.match(
    line,
    /^:1:1 \(file\): is not a text file \(a NUL byte or invalid UTF-8 at byte \d+\)$/,
  );
});

test("several YAML documents are one error naming the second", async (t) => {
  const line = await oneError(t, "version: 1\nmode: detect\n---\nversion: 1\nmode: prevent\n");
  assert.equal(
    line,
    ":3:1 (yaml): a policy file holds one YAML document; remove the '---' and what follows",
  );
});

test("a policy file over the size limit is one error", async (t) => {
  const path = join(scratch(t), "policy.yaml");
  writeFileSync(path, "version: 1\n");
  truncateSync(path, 16 * 2 ** 20 + 1);
  const r = await check(path);
  assert.deepEqual(r.lines, [
    `${path}:1:1 (file): cannot read policy file: is larger than the limit of 16 MiB`,
    `${path}: 1 error`,
  ]);
});

test("at most 100 diagnostics, then how many more", async (t) => {
  const rules = Array.from(
    { length: 300 },
    (_, i) => `  - { name: "BAD${i}", direction: x, action: y }`,
  );
  const path = join(scratch(t), "policy.yaml");
  writeFileSync(path, `version: 1\nmode: detect\nrules:\n${rules.join("\n")}\n`);
  const r = await check(path);
  assert.equal(r.code, 1);
  assert.equal(r.lines.length, 102);
  assert.equal(r.lines[100], `${path}: ... and 800 more problems (fix these first)`);
  assert.equal(r.lines[101], `${path}: 900 errors`);
});

test("past 100 warnings, the rest are counted as warnings, not problems to fix first", async (t) => {
  const dir = scratch(t);
  const lines = Array.from({ length: 150 }, (_, i) => `10.0.${i}.1/24`);
  writeFileSync(join(dir, "list.txt"), `${lines.join("\n")}\n`);
  const path = join(dir, "policy.yaml");
  writeFileSync(
    path,
    "version: 1\nmode: prevent\nsets: { list: { file: list.txt } }\nrules:\n  - { name: l, direction: any, action: block, layer3: { remote: [set:list] } }\n",
  );
  const r = await check(path);
  assert.equal(r.code, 0);
  assert.equal(r.lines.length, 102);
  assert.equal(r.lines[100], `${path}: ... and 50 more warnings`);
  assert.equal(r.lines[101], `${path}: ok, 1 rule, 1 set, 150 warnings`);
});

test("long values are cut in diagnostics", async (t) => {
  const path = join(scratch(t), "policy.yaml");
  writeFileSync(path, `version: 1\nmode: "${"A".repeat(100_000)}"\n`);
  const r = await check(path);
  assert.equal(r.code, 1);
  assert.equal(
    r.lines[0],
    `${path}:2:7 mode: must be one of detect, prevent, got '${"A".repeat(60)}...' (100000 characters)`,
  );
});

test("control characters are escaped in diagnostics", async (t) => {
  const path = join(scratch(t), "policy.yaml");
  writeFileSync(path, 'version: 1\nmode: "detect\\e[2J\\a\\u202e"\n');
  const r = await check(path);
  assert.equal(
    r.lines[0],
    `${path}:2:7 mode: must be one of detect, prevent, got 'detect\\x1b[2J\\x07\\u202e'`,
  );
});

test("control characters are escaped in event lines, the audit log and moat top", (t) => {
  const ev = fakeEvent({
    time: "2026-11-22T10:00:00.000Z",
    interface: "eth0\u001b[2J",
    process: { pid: 7, name: "x\r\nFAKE LINE", user: null } as never,
  });
  const lines: string[] = [];
  stdoutSink((l) => lines.push(l), false).write([ev]);
  assert.equal(
    lines[0],
    '2026-11-22T10:00:00.000Z BLOCKED ingress tcp 203.0.113.9:51514 -> 10.0.0.1:22 on eth0\\x1b[2J by rule default ("x\\r\\nFAKE LINE" pid 7)',
  );
  const path = join(scratch(t), "audit.log");
  const audit = auditSink();
  audit.setPath(path);
  void audit.write([ev]);
  audit.close();
  assert.equal(readFileSync(path, "utf8"), `${lines[0]}\n`);
  const data = emptyTop(Date.parse("2026-11-22T10:00:00Z"));
  tally(data, ev);
  const frame = renderTop(data, { now: Date.parse("2026-11-22T10:00:01Z"), width: 60, rows: 3 });
  assert.ok(
    frame.some((l) => l.startsWith("x\\r\\nFAKE LINE (7)")),
    frame.join("\n"),
  );
});

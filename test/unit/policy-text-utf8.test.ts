// A policy or set file is text when its bytes are UTF-8: U+FFFD written as UTF-8 is a character
// like any other, bytes that are not UTF-8 are refused at their FILE:LINE:COL, in policy files and
// set files alike (as `moat check` and the daemon read them from disk).
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { acceptPolicyFile, acceptPolicyFileAsync } from "../../src/host/accept-policy.ts";
import { formatDiagnostic } from "../../src/config/index.ts";

function withDir(run: (dir: string) => Promise<void>): () => Promise<void> {
  return async () => {
    const dir = mkdtempSync(join(tmpdir(), "moat-utf8-"));
    try {
      await run(dir);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
}

/** The errors both of moat's ways of reading a policy file give, checked to be the same. */
async function errorsOf(file: string): Promise<string[]> {
  const errors = (d: { diagnostics: Parameters<typeof formatDiagnostic>[0][] }) =>
    d.diagnostics.filter((x) => x.severity === "error").map(formatDiagnostic);
  const sync = errors(acceptPolicyFile(file));
  assert.deepEqual(errors(await acceptPolicyFileAsync(file)), sync);
  return sync;
}

const POLICY = "version: 1\nmode: prevent\n";

test(
  "U+FFFD written as UTF-8 is text",
  withDir(async (dir) => {
    const file = join(dir, "p.yaml");
    writeFileSync(file, Buffer.from(`${POLICY.trimEnd()} # caf\ufffd\n`, "utf8"));
    assert.deepEqual(await errorsOf(file), []);
    const set = join(dir, "s.txt");
    writeFileSync(set, "10.0.0.1 # caf\ufffd\n");
    writeFileSync(
      file,
      `${POLICY}sets: { s: { file: s.txt } }\nrules:\n  - { name: r, direction: egress, action: block, layer3: { remote: [set:s] } }\n`,
    );
    assert.deepEqual(await errorsOf(file), []);
  }),
);

test(
  "bytes that are not UTF-8 in a policy file are refused at their line and column",
  withDir(async (dir) => {
    const file = join(dir, "p.yaml");
    writeFileSync(
      file,
      Buffer.concat([
        Buffer.from("version: 1\nmode: prevent # caf"),
        Buffer.from([0xff]),
        Buffer.from("\n"),
      ]),
    );
    assert.deepEqual(await errorsOf(file), [
      `${file}:2:20 (file): is not a text file (a NUL byte or invalid UTF-8 at byte 30)`,
    ]);
  }),
);

test(
  "bytes that are not UTF-8 in a set file are refused at the set file's line and column",
  withDir(async (dir) => {
    const file = join(dir, "p.yaml");
    const set = join(dir, "s.txt");
    writeFileSync(
      set,
      Buffer.concat([Buffer.from("10.0.0.1\n  "), Buffer.from([0xff, 0xfe]), Buffer.from("\n")]),
    );
    writeFileSync(
      file,
      `${POLICY}sets: { s: { file: s.txt } }\nrules:\n  - { name: r, direction: egress, action: block, layer3: { remote: [set:s] } }\n`,
    );
    const errors = await errorsOf(file);
    assert.equal(errors.length, 1, errors.join("\n"));
    assert.match(
      errors[0] ?? "",
      /^.*s\.txt:2:3 sets\.s: is not a text file \(invalid UTF-8 at byte 11\)/,
    );
  }),
);

// Progress on long work: on a terminal, `moat check` of a large policy shows what is under way on
// one rewritten stderr line and erases it at the end; in a pipe, and for small files, nothing but
// the usual output.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SHOW_AFTER_MS, terminalProgress } from "../../src/cli/progress.ts";
import { MOAT } from "../helpers/paths.ts";

function fakeTerminal(isTTY: boolean) {
  const written: string[] = [];
  return { isTTY, columns: 60, write: (t: string) => written.push(t), written };
}

test("a step shows only once the work has taken SHOW_AFTER_MS; done erases the line", () => {
  let clock = 0;
  const term = fakeTerminal(true);
  const p = terminalProgress(term, () => clock);
  p.step("checking p.yaml (1 KB)");
  assert.deepEqual(term.written, [], "quick work shows nothing");
  clock = SHOW_AFTER_MS + 1;
  p.step("compiling 100000 rules");
  p.step("compiling 100000 rules: regions done and a very long tail that does not fit the width");
  p.done();
  assert.deepEqual(term.written, [
    "\r\x1b[Kcompiling 100000 rules …",
    "\r\x1b[Kcompiling 100000 rules: regions done and a very long tail …",
    "\r\x1b[K",
  ]);
});

test("not a terminal: nothing is written, however long the work", () => {
  let clock = 0;
  const term = fakeTerminal(false);
  const p = terminalProgress(term, () => clock);
  clock = 10_000;
  p.step("compiling 100000 rules");
  p.done();
  assert.deepEqual(term.written, []);
});

/** A policy of `n` rules, each allowing a port from an address. */
function bigPolicy(n: number): string {
  const rules = Array.from(
    { length: n },
    (_, i) => `  - name: r${i}
    direction: ingress
    action: allow
    layer3: { remote: [10.${(i >> 8) & 255}.${i & 255}.0/24] }
    layer4: { protocol: tcp, port: [${1 + (i % 60000)}] }`,
  );
  return `version: 1\nmode: prevent\ndefaults: { ingress: block, egress: allow }\nrules:\n${rules.join("\n")}\n`;
}

test("moat check of 10,000 rules: steps on a terminal, then only the summary; none in a pipe", (t) => {
  const dir = mkdtempSync(join(tmpdir(), "moat-progress-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, "big.yaml");
  writeFileSync(file, bigPolicy(10_000));
  // script(1) runs the command on a pseudo-terminal: stderr is a TTY there
  const tty = spawnSync("script", ["-qec", `${MOAT} check ${file}`, "/dev/null"], {
    encoding: "utf8",
    timeout: 110_000,
  });
  assert.equal(tty.status, 0, tty.stdout);
  const ERASE = "\r\x1b[K";
  assert.ok(tty.stdout.includes(`${ERASE}compiling 10000 rules`), JSON.stringify(tty.stdout));
  // the last step erased, then the summary
  assert.ok(tty.stdout.endsWith(`${ERASE}${file}: ok, 10000 rules, 0 sets\r\n`), tty.stdout);

  const piped = spawnSync(MOAT, ["check", file], { encoding: "utf8", timeout: 110_000 });
  assert.equal(piped.status, 0, piped.stderr);
  assert.equal(piped.stderr, "");
  assert.equal(piped.stdout, `${file}: ok, 10000 rules, 0 sets\n`);
});

// Man pages and shell completion come from the commands' own definitions (scripts/
// gen-cli-reference.ts): every command has a page that names each of its options and the exit
// codes, the pages are clean roff, and bash with the completion sourced completes command
// names, options and a command's first words.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { commands } from "../../src/cli/commands/index.ts";
import { NODE, ROOT } from "../helpers/paths.ts";

const out = mkdtempSync(join(tmpdir(), "moat-cli-reference-"));
process.on("exit", () => rmSync(out, { recursive: true, force: true }));
const gen = spawnSync(
  NODE,
  ["--disable-warning=ExperimentalWarning", join(ROOT, "scripts/gen-cli-reference.ts"), out],
  { encoding: "utf8" },
);

test("every command has a man page naming its options; moat(1) lists them all", async () => {
  assert.equal(gen.status, 0, gen.stderr);
  const pages = readdirSync(join(out, "man")).sort();
  assert.deepEqual(pages, ["moat.1", ...commands.map((c) => `moat-${c.name}.1`)].sort());
  const main = readFileSync(join(out, "man", "moat.1"), "utf8");
  for (const entry of commands) {
    assert.ok(main.includes(`\\fBmoat\\-${entry.name.replace(/-/g, "\\-")}\\fR(1)`), entry.name);
    const command = await entry.load();
    const page = readFileSync(join(out, "man", `moat-${entry.name}.1`), "utf8");
    for (const option of Object.keys(command.options ?? {}).filter((o) => o !== "arrow"))
      assert.ok(page.includes(`\\-\\-${option.replace(/-/g, "\\-")}`), `${entry.name} --${option}`);
    assert.match(page, /^\.SH EXIT STATUS$/m);
  }
});

test("the pages are clean roff (groff -ww warns about nothing)", () => {
  for (const page of readdirSync(join(out, "man"))) {
    const r = spawnSync("groff", ["-man", "-ww", "-z", join(out, "man", page)], {
      encoding: "utf8",
    });
    assert.equal(r.status, 0, page);
    assert.equal(r.stderr, "", page);
  }
});

/** What bash's completion offers for the command line `words` (the last one is completed). */
function complete(...words: string[]): string[] {
  const script = [
    `source ${join(out, "completion", "moat.bash")}`,
    `COMP_WORDS=(${words.map((w) => `'${w}'`).join(" ")})`,
    `COMP_CWORD=${words.length - 1}`,
    "_moat",
    'printf "%s\\n" "${COMPREPLY[@]}"',
  ].join("\n");
  const r = spawnSync("bash", ["--norc", "--noprofile", "-c", script], {
    encoding: "utf8",
    cwd: out,
  });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.split("\n").filter(Boolean);
}

test("bash completion completes command names, options and first words", () => {
  assert.deepEqual(complete("moat", ""), [...commands.map((c) => c.name), "--help", "--version"]);
  assert.deepEqual(complete("moat", "st"), ["status", "stats"]);
  assert.deepEqual(complete("moat", "c"), ["check", "console", "cleanup"]);
  assert.deepEqual(complete("moat", "policy", "a"), ["apply"]);
  assert.deepEqual(complete("moat", "mode", ""), ["detect", "prevent", "policy"]);
  assert.deepEqual(complete("moat", "events", "--fo"), ["--follow"]);
  assert.deepEqual(complete("moat", "policy", "apply", "x.yaml", "--c"), ["--ca", "--confirm"]);
  // an option that takes a value completes file names
  assert.deepEqual(complete("moat", "run", "--policy", "comp"), ["completion"]);
});

/**
 * What the zsh completion asks of zsh's completion system for `words` (the last one is being
 * completed): _describe and _arguments stubbed to print what they are given.
 */
function zshAsks(...words: string[]): string[] {
  const script = [
    "_describe() { print -l -- ${(P)${@[-1]}} }",
    '_arguments() { print -l -- "$@" }',
    `words=(${words.map((w) => `'${w}'`).join(" ")})`,
    `CURRENT=${words.length}`,
    `source ${join(out, "completion", "_moat")}`,
  ].join("\n");
  const r = spawnSync("zsh", ["-f", "-c", script], { encoding: "utf8" });
  if (r.error) return [];
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.split("\n").filter(Boolean);
}

test("the zsh completion offers the commands, then each command's options and words", () => {
  const zsh = readFileSync(join(out, "completion", "_moat"), "utf8");
  assert.match(zsh, /^#compdef moat$/m);
  const check = spawnSync("zsh", ["-n", join(out, "completion", "_moat")]);
  assert.equal(check.error, undefined, "zsh is not installed: make setup installs it (apt: zsh)");
  assert.equal(check.status, 0, `zsh -n _moat: ${check.stderr}`);
  assert.deepEqual(
    zshAsks("moat", "st").map((l) => l.split(":")[0]),
    commands.map((c) => c.name),
  );
  const mode = zshAsks("moat", "mode", "");
  assert.ok(mode.includes("1:action:(detect prevent policy)"), mode.join("\n"));
  assert.ok(mode.includes("*--api:value:_files"), mode.join("\n"));
  const events = zshAsks("moat", "events", "--");
  assert.ok(events.includes("*--follow") && events.includes("*-f"), events.join("\n"));
  assert.ok(events.includes("*:file:_files"));
});

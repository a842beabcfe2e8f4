// Colour only for a person at a terminal: `moat explain` into a pipe carries no ANSI code; on a
// terminal (a pty made by script(1)) its verdict is coloured, unless NO_COLOR is set or TERM is
// dumb. Event lines colour their verdict word the same way.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { colourEventLine, colourExplainLine, colourFor } from "../../src/cli/colour.ts";
import { ROOT } from "../helpers/paths.ts";

const EXPLAIN = `${ROOT}bin/moat explain ${ROOT}examples/server.yaml tcp 203.0.113.9:1 '->' 10.0.0.1:22`;
const ESC = "\x1b[";

test("who gets colour: a TTY, without NO_COLOR, not TERM=dumb", () => {
  assert.equal(colourFor({ isTTY: true }, { TERM: "xterm" }), true);
  assert.equal(colourFor({ isTTY: false }, { TERM: "xterm" }), false);
  assert.equal(colourFor({}, {}), false);
  assert.equal(colourFor({ isTTY: true }, { NO_COLOR: "1" }), false);
  assert.equal(colourFor({ isTTY: true }, { NO_COLOR: "" }), true, "an empty NO_COLOR is unset");
  assert.equal(colourFor({ isTTY: true }, { TERM: "dumb" }), false);
});

test("only the verdict word is coloured; the text stays the same", () => {
  const line =
    "2026-12-03T10:00:00.000Z BLOCKED ingress tcp 1.2.3.4:5 -> 10.0.0.1:22 by rule default";
  const painted = colourEventLine(line);
  assert.equal(painted, line.replace("BLOCKED", `${ESC}31mBLOCKED${ESC}0m`));
  // eslint-disable-next-line no-control-regex
  assert.equal(painted.replace(/\x1b\[\d+m/g, ""), line);
  assert.equal(colourExplainLine("verdict: detected"), `verdict: ${ESC}33mdetected${ESC}0m`);
  assert.equal(colourExplainLine("rule: blocked-things"), "rule: blocked-things");
});

function withoutNoColor(): Record<string, string | undefined> {
  const env = { ...process.env };
  delete env.NO_COLOR;
  return env;
}

/** `command` run with its stdout on a pseudo-terminal (script -q), and the environment given. */
function onTerminal(command: string, env: Record<string, string>): string {
  const r = spawnSync("script", ["-qec", command, "/dev/null"], {
    encoding: "utf8",
    env: { ...withoutNoColor(), TERM: "xterm", ...env },
  });
  return r.stdout;
}

test("moat explain: colour on a terminal, none in a pipe, none with NO_COLOR or TERM=dumb", () => {
  const piped = spawnSync("sh", ["-c", EXPLAIN], {
    encoding: "utf8",
    env: { ...process.env, TERM: "xterm" },
  });
  assert.match(piped.stdout, /^verdict: blocked$/m);
  assert.ok(!piped.stdout.includes("\x1b"), "no ANSI code in a pipe");
  assert.ok(onTerminal(EXPLAIN, {}).includes(`verdict: ${ESC}31mblocked${ESC}0m`));
  assert.ok(!onTerminal(EXPLAIN, { NO_COLOR: "1" }).includes(ESC));
  assert.ok(!onTerminal(EXPLAIN, { TERM: "dumb" }).includes(ESC));
});

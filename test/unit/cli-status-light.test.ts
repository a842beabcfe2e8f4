// `moat status` is what a user types when the daemon seems slow: it must start fast. It loads
// only the CLI and its API client, never the daemon, the datapath or the policy loader (YAML,
// schema, compiler), which cost several times what the request itself does. What a command
// loads is observed through a module hook (test/helpers/trace-loads.ts), not timed.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { DEFAULT_SOCKET as DAEMON_SOCKET } from "../../src/api/listen.ts";
import { DEFAULT_SOCKET as CLI_SOCKET } from "../../src/cli/api/client.ts";
import { commands } from "../../src/cli/commands/index.ts";
import { NODE, ROOT } from "../helpers/paths.ts";

function loadedBy(args: string[]): string[] {
  const run = spawnSync(
    NODE,
    [
      `--import=${ROOT}test/helpers/trace-loads.ts`,
      "--disable-warning=ExperimentalWarning",
      `${ROOT}src/cli/main.ts`,
      ...args,
    ],
    { encoding: "utf8" },
  );
  return run.stderr
    .split("\n")
    .filter((l) => l.startsWith("LOADED "))
    .map((l) => l.slice("LOADED ".length).replace(`file://${ROOT}`, ""));
}

const HEAVY =
  /^src\/(daemon|datapath|config|policy|host|observe|attribution|route)\b|node_modules\/(yaml|ajv|@sinclair)\//;

for (const args of [
  ["status", "--api", "unix:/nonexistent/api.sock"],
  ["mode", "--api", "unix:/nonexistent/api.sock"],
  ["--help"],
]) {
  test(`moat ${args[0]} loads neither the daemon nor the policy loader`, () => {
    const loaded = loadedBy(args);
    assert.ok(loaded.includes("src/cli/main.ts"), loaded.join("\n"));
    assert.deepEqual(
      loaded.filter((m) => HEAVY.test(m)),
      [],
    );
  });
}

test("the CLI's default API socket is the daemon's", () => {
  assert.equal(CLI_SOCKET, DAEMON_SOCKET);
});

test("moat --help lists each command with its own summary", async () => {
  for (const entry of commands) {
    const command = await entry.load();
    assert.equal(command.name, entry.name);
    assert.equal(command.summary, entry.summary);
  }
});

// The CLI bundle (scripts/build-cli.ts, `make cli-bundle`) is the same CLI as src/: every policy
// fixture checks the same, explain gives the same verdict and exit status, errors are the same,
// and a command that talks to the daemon carries neither the policy loader nor OpenTelemetry or
// NATS. bin/moat runs it only while no file of src/ is newer.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import {
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { NODE, ROOT } from "../helpers/paths.ts";

const built = spawnSync("make", ["-s", "cli-bundle"], { cwd: ROOT, encoding: "utf8" });

function run(main: string, args: string[]) {
  const r = spawnSync(NODE, ["--disable-warning=ExperimentalWarning", main, ...args], {
    cwd: ROOT,
    encoding: "utf8",
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}
const source = (...args: string[]) => run(join(ROOT, "src/cli/main.ts"), args);
const bundled = (...args: string[]) => run(join(ROOT, "build/cli/main.mjs"), args);

test("the bundle checks and explains exactly as the source does", () => {
  assert.equal(built.status, 0, built.stderr);
  const dir = "test/fixtures/policies";
  const files = [
    ...readdirSync(join(ROOT, dir))
      .filter((f) => f.endsWith(".yaml"))
      .map((f) => `${dir}/${f}`),
    ...readdirSync(join(ROOT, "examples"))
      .filter((f) => f.endsWith(".yaml"))
      .map((f) => `examples/${f}`),
  ];
  // one process each for every file (a check of several files checks each as a check of one)
  assert.deepEqual(bundled("check", ...files), source("check", ...files));
  const explain = ["explain", "examples/server.yaml", "tcp", "203.0.113.9:1", "->", "10.0.0.1:22"];
  assert.deepEqual(bundled(...explain), source(...explain));
  assert.equal(bundled(...explain).code, 3);
  const refused = ["status", "--api", "unix:/nonexistent/api.sock"];
  assert.deepEqual(bundled(...refused), source(...refused));
  assert.deepEqual(bundled("frobnicate"), source("frobnicate"));
  assert.deepEqual(bundled("events", "--not", "x"), source("events", "--not", "x"));
});

test("a command that talks to the daemon is small: no policy loader, no OpenTelemetry, no NATS", () => {
  assert.equal(built.status, 0, built.stderr);
  for (const name of ["status", "events", "top", "mode", "policy", "console"]) {
    const size = statSync(join(ROOT, "build/cli/commands", `${name}.mjs`)).size;
    assert.ok(size < 64 * 1024, `${name}.mjs is ${size} bytes`);
  }
});

test("the policy commands carry the schema's validator, not the library that builds the schema", () => {
  assert.equal(built.status, 0, built.stderr);
  for (const name of ["check", "explain"]) {
    const code = readFileSync(join(ROOT, "build/cli/commands", `${name}.mjs`), "utf8");
    assert.match(code, /function validate\d+\(/, `${name}.mjs has the generated validator`);
    assert.doesNotMatch(code, /node_modules\/@sinclair\/typebox/, `${name}.mjs carries TypeBox`);
  }
});

test("bin/moat runs the bundle while it is fresh, and src/ once a source file is newer", () => {
  assert.equal(built.status, 0, built.stderr);
  const which = () =>
    spawnSync("sh", ["-x", join(ROOT, "bin/moat"), "--version"], { encoding: "utf8" }).stderr;
  assert.match(which(), /build\/cli\/main\.mjs --version/);
  const daemon = spawnSync("sh", ["-x", join(ROOT, "bin/moat"), "run", "--help"], {
    encoding: "utf8",
  }).stderr;
  assert.match(daemon, /src\/cli\/main\.ts run --help/, "the daemon runs from src/");
  // a bundle older than src/ (as after an edit) is not run
  const stamp = join(ROOT, "build/cli/BUILT");
  const { atime, mtime } = statSync(stamp);
  utimesSync(stamp, 0, 0);
  try {
    assert.match(which(), /src\/cli\/main\.ts --version/);
  } finally {
    utimesSync(stamp, atime, mtime);
  }
  assert.match(which(), /build\/cli\/main\.mjs --version/);
});

test("the daemon's bundle (build/dist) checks as the source does, with the validator made at build time", (t) => {
  const dist = spawnSync("make", ["-s", "dist"], { cwd: ROOT, encoding: "utf8" });
  assert.equal(dist.status, 0, dist.stderr);
  const daemonBundle = (...args: string[]) => run(join(ROOT, "build/dist/cli-main.mjs"), args);
  // empty strings where the schema wants one character at least, and one of two UTF-16 units
  const dir = mkdtempSync(join(tmpdir(), "moat-dist-check-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const strings = join(dir, "strings.yaml");
  writeFileSync(
    strings,
    `version: 1
sets:
  empty: ["10.0.0.1", ""]
  feed: { file: "", category: "😀" }
  named: { file: list.txt, category: "😀" }
rules: []
`,
  );
  const files = [
    strings,
    ...readdirSync(join(ROOT, "test/fixtures/policies"))
      .filter((f) => f.endsWith(".yaml"))
      .map((f) => `test/fixtures/policies/${f}`),
    "examples/server.yaml",
  ];
  const checked = daemonBundle("check", ...files);
  assert.deepEqual(checked, source("check", ...files));
  assert.match(checked.stderr + checked.stdout, /strings\.yaml:3:/, "the empty entry is refused");
  const chunks = readdirSync(join(ROOT, "build/dist"))
    .map((f) => readFileSync(join(ROOT, "build/dist", f), "utf8"))
    .join("\n");
  assert.match(chunks, /function validate\d+\(/, "the generated validator is in the bundle");
  assert.doesNotMatch(chunks, /compileSchema|new Ajv\(/, "no schema is compiled at run time");
});

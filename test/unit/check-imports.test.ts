// scripts/check-imports.ts (run by `npm run check`) on a small source tree: it names each
// import against the layers, each cycle, each deep import from the daemon or the CLI, and each
// way src/policy reaches node:; a tree that keeps the rules passes.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";

const SCRIPT = new URL("../../scripts/check-imports.ts", import.meta.url).pathname;

function check(tree: Record<string, string>): { code: number | null; out: string } {
  const root = mkdtempSync(join(tmpdir(), `moat-imports-${process.pid}-`));
  try {
    for (const [path, text] of Object.entries(tree)) {
      mkdirSync(dirname(join(root, "src", path)), { recursive: true });
      writeFileSync(join(root, "src", path), text);
    }
    const r = spawnSync(process.execPath, ["--disable-warning=ExperimentalWarning", SCRIPT, root], {
      encoding: "utf8",
    });
    return { code: r.status, out: r.stdout + r.stderr };
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

const good = {
  "config/index.ts": "export const x = 1;\n",
  "policy/index.ts": 'import { x } from "../config/index.ts";\nexport const y = x;\n',
  "policy/deep.ts": 'import type { Stats } from "node:fs";\nexport type S = Stats;\n',
  "daemon.ts": 'import { y } from "./policy/index.ts";\nexport const z = y;\n',
  "cli/main.ts": 'import { z } from "../daemon.ts";\nexport const w = z;\n',
};

test("a tree that keeps the rules passes", () => {
  const r = check(good);
  assert.equal(r.code, 0, r.out);
  assert.match(r.out, /imports: 5 files/);
});

test("an import against the layers, a cycle, a deep import and node: in policy each fail", () => {
  const r = check({
    ...good,
    "config/up.ts": 'import { y } from "../policy/index.ts";\nexport const u = y;\n',
    "policy/a.ts": 'import { b } from "./b.ts";\nexport const a = 1 + b;\n',
    "policy/b.ts": 'import { a } from "./a.ts";\nimport "node:fs";\nexport const b = a;\n',
    "cli/deep.ts": 'import { a } from "../policy/a.ts";\nexport const d = a;\n',
  });
  assert.equal(r.code, 1);
  const lines = r.out.trim().split("\n");
  assert.ok(lines.includes("src/config/up.ts: config may not import policy (src/policy/index.ts)"));
  assert.ok(lines.includes("import cycle: src/policy/a.ts <-> src/policy/b.ts"));
  assert.ok(
    lines.includes("src/cli/deep.ts: imports src/policy/a.ts; import src/policy/index.ts instead"),
  );
  assert.ok(lines.includes("src/policy/b.ts -> node:fs: a pure module reaches node:"), r.out);
  assert.ok(!r.out.includes("deep.ts -> node:"), "a type import is erased: not a reach");
});

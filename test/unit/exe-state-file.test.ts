// The executables' ledger on disk is read as moat reads every file it trusts: a baseline in it
// decides whether a replaced program is reported, so one that others could write is refused.
import { test } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ExeLedger } from "../../src/observe/executables/exe-ledger.ts";
import { loadExeState } from "../../src/observe/executables/state-file.ts";

const STATE = JSON.stringify({
  version: 1,
  paths: [["/usr/bin/curl", { hash: "ab".repeat(32), earlier: [] }]],
});

test("an executables state file others may write is refused, and nothing of it is taken", () => {
  const dir = mkdtempSync(join(tmpdir(), "moat-exe-state-"));
  try {
    const path = join(dir, "executables.json");
    writeFileSync(path, STATE);
    chmodSync(path, 0o666);
    const ledger = new ExeLedger();
    assert.throws(() => loadExeState(path, ledger), /executables state file .*writable/);
    assert.equal(ledger.paths.size, 0);
    chmodSync(path, 0o600);
    loadExeState(path, ledger);
    assert.equal(ledger.paths.size, 1);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

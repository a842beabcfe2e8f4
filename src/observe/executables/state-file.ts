// The executables' ledger on disk (each path's content and the ones before it), so a restart
// keeps each path's baseline: one JSON file, 0600, written to a temporary file and renamed.
import { mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import type { ExeLedger, ExePathEntry } from "./exe-ledger.ts";

const VERSION = 1;

export function saveExeState(path: string, ledger: ExeLedger): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
  const text = JSON.stringify({ version: VERSION, paths: [...ledger.paths.entries()] });
  writeFileSync(tmp, `${text}\n`, { mode: 0o600 });
  renameSync(tmp, path);
}

/** Loads the saved ledger; a missing file is none; a malformed one throws. */
export function loadExeState(path: string, ledger: ExeLedger): void {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return;
    throw err;
  }
  const saved = JSON.parse(text) as { version?: number; paths?: unknown };
  if (saved.version !== VERSION || !Array.isArray(saved.paths))
    throw new Error(`not a version ${VERSION} executables state`);
  for (const item of saved.paths as [string, ExePathEntry][]) {
    const [p, e] = item;
    if (typeof p !== "string" || typeof e?.hash !== "string" || !Array.isArray(e.earlier)) continue;
    ledger.paths.set(p, e);
  }
}

// The executables' ledger on disk (each path's content and the ones before it), so a restart
// keeps each path's baseline: one JSON file, 0600, written to a temporary file (a random name,
// O_EXCL|O_NOFOLLOW) and renamed, and read as moat reads every file it trusts (root's, in root's
// directories, not writable by others: a baseline in it decides whether a replaced program is
// reported).
import {
  readTrustedFile,
  UnsafeFileError,
  writeTrustedFileAtomic,
} from "../../host/trusted-file.ts";
import type { ExeLedger, ExePathEntry } from "./exe-ledger.ts";

const VERSION = 1;
const WHAT = "executables state file";
/** Far more than any ledger moat keeps. */
const MAX_BYTES = 256 << 20;

export function saveExeState(path: string, ledger: ExeLedger): void {
  const text = JSON.stringify({ version: VERSION, paths: [...ledger.paths.entries()] });
  writeTrustedFileAtomic(path, `${text}\n`, { what: WHAT });
}

/** Loads the saved ledger; a missing file is none; a malformed or untrusted one throws. */
export function loadExeState(path: string, ledger: ExeLedger): void {
  let text: string;
  try {
    text = readTrustedFile(path, { what: WHAT, maxBytes: MAX_BYTES });
  } catch (err) {
    if (err instanceof UnsafeFileError && err.missing) return;
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

// Policy text as the daemon handles it: accepted (checked and compiled, src/host/accept-policy.ts, the
// same function `moat check` uses, run on a worker thread so the API stays responsive) from the file or a body the API received, and written back to the
// policy file atomically.
import { createHash } from "node:crypto";
import { chmodSync, existsSync, statSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import {
  diagnosticLines,
  type Diagnostic,
  type LocalDecision,
  type Mode,
} from "../config/index.ts";
import {
  acceptedOrThrow,
  acceptPolicyAsync,
  acceptPolicyOffThread,
  type LoadedPolicy,
  type UniverseReader,
  writeTrustedFileAtomic,
} from "../host/index.ts";
import type { ValidateResult } from "../api/index.ts";
import { loadPolicySinks } from "../observe/index.ts";
import type { PolicyCompileOptions, TableImage } from "../policy/index.ts";

export const sha256 = (text: string): string => createHash("sha256").update(text).digest("hex");

/** A policy accepted for the daemon, with its warnings as `moat check` prints them. */
export interface AcceptedPolicy extends LoadedPolicy {
  warnings: string[];
}

/** The warnings among `diagnostics`, as `moat check` prints them (FILE:LINE:COL ...). */
const warningLines = (diagnostics: readonly Diagnostic[], fileName: string): string[] =>
  diagnosticLines(
    diagnostics.filter((d) => d.severity === "warning"),
    fileName,
  );

/**
 * `fileName` names the text in diagnostics and anchors relative set files (read off the event
 * loop); rejects with a PolicyError. `offThread`: checked and compiled on the worker thread (a
 * reload, while the API and the event path run); at start, before either, on this thread.
 * `decisions` and `mode` are the local decisions layer (`mode`: `moat mode`'s, over the text's).
 * `tablesAhead` (off the thread): a big policy's packet tables, before the rest of it comes.
 */
export async function compilePolicyText(
  text: string,
  fileName: string,
  universe?: UniverseReader,
  compile?: PolicyCompileOptions,
  offThread = false,
  decisions?: LocalDecision[],
  mode?: Mode,
  tablesAhead?: (tables: TableImage) => void,
): Promise<AcceptedPolicy> {
  const options = {
    ...(universe ? { universe } : {}),
    ...(compile ? { compile } : {}),
    ...(decisions?.length ? { decisions } : {}),
    ...(mode ? { mode } : {}),
  };
  const acceptance = offThread
    ? await acceptPolicyOffThread(text, fileName, {
        ...options,
        ...(tablesAhead ? { tablesAhead } : {}),
      })
    : await acceptPolicyAsync(text, fileName, options);
  const loaded = acceptedOrThrow(acceptance);
  // the code of the sinks it asks for (OpenTelemetry, NATS), before it is installed
  await loadPolicySinks(loaded.model);
  return { ...loaded, warnings: warningLines(acceptance.diagnostics, fileName) };
}

/** Every problem the daemon would refuse the text for, as POST /v1/policy/validate answers. */
export async function validatePolicyText(text: string, fileName: string): Promise<ValidateResult> {
  const { diagnostics } = await acceptPolicyOffThread(text, fileName);
  const errors = diagnosticLines(
    diagnostics.filter((d) => d.severity === "error"),
    fileName,
  );
  const warnings = warningLines(diagnostics, fileName);
  return { ok: errors.length === 0, errors, warnings };
}

/** The work tree (the directory with .git) `path` is inside, or null. */
function sourceTreeOf(path: string): string | null {
  for (let dir = dirname(resolve(path)); ; dir = dirname(dir)) {
    if (existsSync(join(dir, ".git"))) return dir;
    if (dir === dirname(dir)) return null;
  }
}

/**
 * Replaces the file by rename, so a reader never sees half a policy; keeps its mode. Never a file
 * of a source tree (a checkout of moat's examples): the policy a mode switch or an apply made is
 * not written into the repository.
 */
export function writePolicyFile(path: string, text: string): void {
  const tree = sourceTreeOf(path);
  if (tree)
    throw new Error(
      `${path} is inside the source tree ${tree} (it has .git); run moat with a copy (make run installs one under /etc/moat) so applied policies can be saved`,
    );
  let mode = 0o600;
  try {
    mode = statSync(path).mode & 0o777;
  } catch {
    // a new file
  }
  // the temporary copy under a random name, O_EXCL|O_NOFOLLOW, in the file's checked directory
  writeTrustedFileAtomic(path, text, { what: "policy file" });
  // made 0600; only root can write its directory (checked by the write), so no one swaps the file
  if (mode !== 0o600) chmodSync(path, mode);
}

// The Node entry points: read a policy file (and its set files) from disk.

import { dirname, isAbsolute, join } from "node:path";
import type { PolicyFileKind, PolicyHost } from "./check-context.ts";
import type { PolicyModel } from "./model.ts";
import { checkPolicySource, parsePolicyWith, type PolicyCheck } from "./parse.ts";
import { diagnostic, PolicyError } from "./diagnostics.ts";
import { readTrustedFile, UnsafeFileError } from "./trusted-file.ts";

/**
 * The largest policy and set files read (docs/policy.md, "Files moat reads"): a set of a million
 * IPv6 CIDRs fits; big lists belong in set files, read line by line, not in the YAML.
 */
export const MAX_FILE_BYTES: Record<PolicyFileKind, number> = {
  policy: 4 * 2 ** 20,
  set: 64 * 2 ** 20,
};

/** An API token file holds a few lines; anything bigger is not one. */
export const MAX_TOKEN_FILE_BYTES = 64 * 1024;

/** Opens files as src/config/trusted-file.ts does: never a FIFO, a device or a planted link. */
export function readPolicyFileText(path: string, kind: PolicyFileKind = "policy"): string {
  const what = kind === "policy" ? "policy file" : "set file";
  try {
    return readTrustedFile(path, { what, maxBytes: MAX_FILE_BYTES[kind] });
  } catch (err) {
    if (err instanceof UnsafeFileError) throw new Error(err.reason, { cause: err });
    throw err;
  }
}

/** Set files are relative to the policy file's folder, as the user would expect. */
export const nodeHost: PolicyHost = {
  readFile: readPolicyFileText,
  resolve: (policyFile, path) => (isAbsolute(path) ? path : join(dirname(policyFile), path)),
};

/** Parses policy text named `fileName` (used in diagnostics and to find set files). */
export function parsePolicy(
  text: string,
  fileName: string,
  host: PolicyHost = nodeHost,
): PolicyModel {
  return parsePolicyWith(text, fileName, host);
}

/** Reads and parses a policy file; throws PolicyError (code EPOLICY) with every problem found. */
export function loadPolicyFile(path: string, host: PolicyHost = nodeHost): PolicyModel {
  return parsePolicy(readPolicyText(path, host), path, host);
}

/** Like loadPolicyFile, but returns the diagnostics instead of throwing (for `moat check`). */
export function checkPolicyFile(path: string, host: PolicyHost = nodeHost): PolicyCheck {
  return checkPolicySource(readPolicyText(path, host), path, host);
}

function readPolicyText(path: string, host: PolicyHost): string {
  try {
    return host.readFile(path, "policy");
  } catch (err) {
    const at = { file: path, line: 1, col: 1, path: "(file)" };
    throw new PolicyError([diagnostic(at, `cannot read policy file: ${(err as Error).message}`)]);
  }
}

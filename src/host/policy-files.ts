// The Node entry points of the policy loader: policy and set files read from disk through
// trusted-file.ts (never a FIFO, a device or a planted link), set files relative to their policy.
import { dirname, isAbsolute, join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  checkPolicySource,
  diagnostic,
  parsePolicyWith,
  PolicyError,
  type Mode,
  type PolicyCheck,
  type PolicyFileKind,
  type PolicyHost,
  type PolicyModel,
} from "../config/index.ts";
import { textOfBytes } from "../config/yaml-source.ts";
import { MAX_SET_FILE_BYTES } from "../config/normalize-sets.ts";
import { readTrustedFile, readTrustedFileAsync, UnsafeFileError } from "./trusted-file.ts";
import { stateDirectory } from "./state-dir.ts";

/**
 * The largest policy and set files read (docs/policy.md, "Files moat reads"): a set of a million
 * IPv6 CIDRs fits, and so does a policy of 100k rules; big lists belong in set files, read line by
 * line, not in the YAML. What the daemon stores for the loader (a feed's body, a dynamic set's
 * file) is bounded by the set-file limit where the policy is checked.
 */
export const MAX_FILE_BYTES: Record<PolicyFileKind, number> = {
  policy: 16 * 2 ** 20,
  set: MAX_SET_FILE_BYTES,
};

export { DEFAULT_STATE_DIR } from "./state-dir.ts";

/** An API token file holds a few lines; anything bigger is not one. */
export const MAX_TOKEN_FILE_BYTES = 64 * 1024;

/** A byte that is not UTF-8 stays one the checks find and place (textOfBytes), not U+FFFD. */
const readOptions = (kind: PolicyFileKind) => ({
  what: kind === "policy" ? "policy file" : "set file",
  maxBytes: MAX_FILE_BYTES[kind],
  decode: textOfBytes,
});

/** An unsafe file's message names the file already (the diagnostic says which). */
function reasonOnly(err: unknown): unknown {
  return err instanceof UnsafeFileError ? new Error(err.reason, { cause: err }) : err;
}

/** Opens files as trusted-file.ts does: never a FIFO, a device or a planted link. */
export function readPolicyFileText(path: string, kind: PolicyFileKind = "policy"): string {
  try {
    return readTrustedFile(path, readOptions(kind));
  } catch (err) {
    throw reasonOnly(err);
  }
}

/** readPolicyFileText off the event loop (the daemon's reads). */
export async function readPolicyFileTextAsync(
  path: string,
  kind: PolicyFileKind = "policy",
): Promise<string> {
  try {
    return await readTrustedFileAsync(path, readOptions(kind));
  } catch (err) {
    throw reasonOnly(err);
  }
}

/** The shipped list of DNS-over-HTTPS resolvers: the built-in set:doh-resolvers. */
export const SHIPPED_DOH_LIST = fileURLToPath(
  new URL("../../data/doh-resolvers.txt", import.meta.url),
);

/** Set files are relative to the policy file's folder, as the user would expect. */
export const nodeHost: PolicyHost = {
  readFile: readPolicyFileText,
  resolve: (policyFile, path) => (isAbsolute(path) ? path : join(dirname(policyFile), path)),
  builtinSets: { "doh-resolvers": SHIPPED_DOH_LIST },
  setStore: setStoreDir(),
};

/** Where the daemon keeps dynamic sets and fetched feeds: $MOAT_STATE_DIR/sets. */
export function setStoreDir(): string {
  return join(stateDirectory(), "sets");
}

/** Reads and parses a policy file; throws PolicyError (code EPOLICY) with every problem found. */
export function loadPolicyFile(path: string, host: PolicyHost = nodeHost): PolicyModel {
  return parsePolicyWith(readPolicyText(path, host), path, host);
}

/** Like loadPolicyFile, but returns the diagnostics instead of throwing (for `moat check`). */
/** `mode`: the global mode `moat mode` decided, as if the file said it. */
export function checkPolicyFile(
  path: string,
  host: PolicyHost = nodeHost,
  mode?: Mode,
): PolicyCheck {
  return checkPolicySource(readPolicyText(path, host), path, host, mode);
}

function readPolicyText(path: string, host: PolicyHost): string {
  try {
    return host.readFile(path, "policy");
  } catch (err) {
    const at = { file: path, line: 1, col: 1, path: "(file)" };
    throw new PolicyError([diagnostic(at, `cannot read policy file: ${(err as Error).message}`)]);
  }
}

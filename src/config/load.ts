// The Node entry points: read a policy file (and its set files) from disk.

import { readFileSync } from "node:fs";
import { dirname, isAbsolute, join } from "node:path";
import type { PolicyHost } from "./check-context.ts";
import type { PolicyModel } from "./model.ts";
import { checkPolicySource, parsePolicyWith, type PolicyCheck } from "./parse.ts";
import { diagnostic, PolicyError } from "./diagnostics.ts";

/** Set files are relative to the policy file's folder, as the user would expect. */
export const nodeHost: PolicyHost = {
  readFile: (path) => {
    try {
      return readFileSync(path, "utf8");
    } catch (err) {
      // "ENOENT: no such file or directory, open 'x'" -> "no such file or directory"
      const message = (err as Error).message.replace(/^E[A-Z]+: /, "").replace(/, \w+ '.*'$/, "");
      throw new Error(message, { cause: err });
    }
  },
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
    return host.readFile(path);
  } catch (err) {
    const at = { file: path, line: 1, col: 1, path: "(file)" };
    throw new PolicyError([diagnostic(at, `cannot read policy file: ${(err as Error).message}`)]);
  }
}

// Policy text -> normalized model, or every problem found. No Node APIs: files are reached through
// the host, so the web playground can run the same checks.

import { CheckContext, type PolicyHost } from "./check-context.ts";
import { hasErrors, PolicyError, sortDiagnostics, type Diagnostic } from "./diagnostics.ts";
import type { Mode, PolicyModel } from "./model.ts";
import { normalizePolicy } from "./normalize.ts";
import { checkSchema } from "./schema-check.ts";
import type { PolicyDocument } from "./schema.ts";
import { findShadowedRules } from "./shadowing.ts";
import { findWeakIdentityRules } from "./weak-identity.ts";
import { readFast } from "./fast-source.ts";
import { LeanSource, readLean } from "./lean-source.ts";
import { PolicySource, type CheckedSource } from "./yaml-source.ts";

export interface PolicyCheck {
  /** The model, when there is no error (warnings may remain). */
  model?: PolicyModel;
  /** Every error and warning, in file order. */
  diagnostics: Diagnostic[];
}

/**
 * Checks everything and reports everything; never throws for a bad policy. The file is read the
 * lean way first (src/config/lean-source.ts: positions worked out when one is read), else the fast
 * way (src/config/fast-source.ts); when that finds an error, or cannot read the file
 * faithfully, it is read again with the yaml library's positions, so every error is reported the
 * way PolicySource reports it (for a file up to RE_READ_MAX). `mode`: the global mode decided
 * at run time (`moat mode`, a local decision), as if the file said it.
 */
export function checkPolicySource(
  text: string,
  fileName: string,
  host: PolicyHost,
  mode?: Mode,
): PolicyCheck {
  const fast = readLean(fileName, text) ?? readFast(fileName, text);
  if (fast) {
    const check = checkSource(fast, host, mode);
    if (fast instanceof LeanSource) fast.done();
    if (!hasErrors(check.diagnostics) || text.length > RE_READ_MAX) return check;
  }
  return checkSource(new PolicySource(fileName, text), host, mode);
}

/**
 * Above this size a file the fast reader could read is not read again for its errors: the yaml
 * library would need about a minute and gigabytes for a 100k-rule file. The errors are the same
 * (the checks are the same code, and the fast reader's positions are PolicySource's); only the
 * yaml library's own remarks on a readable file would be missing.
 */
const RE_READ_MAX = 2 ** 20;

function checkSource(source: CheckedSource, host: PolicyHost, mode?: Mode): PolicyCheck {
  const diagnostics = [...source.diagnostics];
  if (!source.parsed) return { diagnostics: sortDiagnostics(diagnostics) };
  if (source.data === null || source.data === undefined) {
    const at = source.pos([]);
    diagnostics.push({
      ...at,
      message: "the policy is empty; it needs at least 'version: 1'",
      severity: "error",
    });
    return { diagnostics };
  }
  const schema = checkSchema(source);
  append(diagnostics, schema.diagnostics);
  const isMapping = typeof source.data === "object" && !Array.isArray(source.data);
  if (!isMapping) return { diagnostics: sortDiagnostics(diagnostics) };
  const ctx = new CheckContext(source, schema.problems, host);
  const doc = source.data as PolicyDocument;
  const model = normalizePolicy(ctx, mode ? { ...doc, mode } : doc);
  append(diagnostics, ctx.diagnostics);
  if (model && !hasErrors(diagnostics)) {
    append(diagnostics, findShadowedRules(model));
    append(diagnostics, findWeakIdentityRules(model));
    return { model, diagnostics: sortDiagnostics(diagnostics) };
  }
  return { diagnostics: sortDiagnostics(diagnostics) };
}

/**
 * `items` added to `list` one by one: a policy can have hundreds of thousands of findings (a
 * warning per line of a big set file), more than `push(...items)` can pass as arguments.
 */
function append<T>(list: T[], items: readonly T[]): void {
  for (const item of items) list.push(item);
}

/** The model, or a PolicyError carrying every error (and warning) found. */
export function parsePolicyWith(text: string, fileName: string, host: PolicyHost): PolicyModel {
  const { model, diagnostics } = checkPolicySource(text, fileName, host);
  if (!model) throw new PolicyError(diagnostics);
  return model;
}

/**
 * Where the loader runs without file access (a browser, a test of the text alone): a set file is
 * reported as unreadable at the line that names it. src/host gives the daemon's and the CLI's.
 */
export const textOnlyHost: PolicyHost = {
  readFile: () => {
    throw new Error("set files are not read here (this loader was given the policy text only)");
  },
  resolve: (policyFile, path) =>
    path.startsWith("/") ? path : `${policyFile.slice(0, policyFile.lastIndexOf("/") + 1)}${path}`,
};

/** Parses policy text named `fileName` (used in diagnostics and to find set files). */
export function parsePolicy(
  text: string,
  fileName: string,
  host: PolicyHost = textOnlyHost,
): PolicyModel {
  return parsePolicyWith(text, fileName, host);
}

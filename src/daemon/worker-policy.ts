// A policy text accepted on a history worker thread (replay, suggestions) as `moat check`
// accepts it, its diagnostics as lines; set files read only for callers allowed to apply a policy.
import { diagnosticLines, type PolicyHost, type PolicyModel } from "../config/index.ts";
import { acceptPolicy } from "../host/index.ts";

/** Set files refused (a built-in set is moat's own file, readable by anyone). */
export function withoutSetFiles(host: PolicyHost, what = "a replay"): PolicyHost {
  const builtin = new Set(Object.values(host.builtinSets ?? {}));
  return {
    ...host,
    readFile: (path, kind) => {
      if (kind === "set" && !builtin.has(path))
        throw new Error(`${what} reads set files only for callers with the 'policy' scope`);
      return host.readFile(path, kind);
    },
  };
}

/** The text's model when it has no error, and its errors and warnings as `moat check` prints them. */
export function accepted(
  text: string,
  policyPath: string,
  host: PolicyHost,
): { model?: PolicyModel; errors: string[]; warnings: string[] } {
  const { diagnostics, policy } = acceptPolicy(text, policyPath, { host });
  const lines = (severity: string) =>
    diagnosticLines(
      diagnostics.filter((d) => d.severity === severity),
      policyPath,
    );
  const errors = lines("error");
  return {
    ...(policy && !errors.length ? { model: policy.model } : {}),
    errors,
    warnings: lines("warning"),
  };
}

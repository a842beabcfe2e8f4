// The policy as moat accepts it, in the browser: the same acceptance `moat check` and the daemon
// run (src/policy/accept-text.ts), with set files read from the shipped examples. What only a
// host can say (its users, file permissions, routes) is left out: there is no host here.
import { DOH_RESOLVERS, EXAMPLE_FILES } from "moat:examples";
import { formatDiagnostic, type Diagnostic, type PolicyHost } from "../../src/config/index.ts";
import { acceptPolicyText, type Acceptance } from "../../src/policy/index.ts";

/** The name the playground's policy is checked under (set files are relative to it). */
export const POLICY_FILE = "policy.yaml";
const DOH_PATH = "(built-in)/doh-resolvers.txt";

export const browserHost: PolicyHost = {
  readFile(path) {
    if (path === DOH_PATH) return DOH_RESOLVERS;
    const text = EXAMPLE_FILES[path.replace(/^(\.\/)+/, "")];
    if (text === undefined || path.endsWith(".yaml"))
      throw new Error(
        "no such set file here (the playground has the examples' set files only; list the entries in the policy)",
      );
    return text;
  },
  resolve: (_policyFile, path) => path,
  builtinSets: { "doh-resolvers": DOH_PATH },
};

export function checkPolicy(text: string): Acceptance {
  return acceptPolicyText(text, POLICY_FILE, { host: browserHost });
}

/** A diagnostic as `moat check` prints it, without the file name: `LINE:COL path: message`. */
export function problemText(d: Diagnostic): string {
  const full = formatDiagnostic(d);
  return full.startsWith(`${d.file}:`) ? full.slice(d.file.length + 1) : full;
}

// The daemon checks a policy it is sent as its own policy file (the set files the policy names
// are read beside that file), so its diagnostics name that file; the lines and columns are the
// sent file's, and the person who sent it knows it by its own name.
import { call, type ApiTarget } from "../api/client.ts";
import type { PolicyView } from "../../api/index.ts";

/** The running policy's file, or undefined when the API does not say (a token without read). */
export async function runningPolicyPath(target: ApiTarget): Promise<string | undefined> {
  try {
    return (await call<PolicyView>(target, "GET", "/v1/policy")).path;
  } catch {
    return undefined;
  }
}

/** `lines` with the positions in the running policy's file named after `file`. */
export function namedAfter(
  lines: readonly string[],
  runningPath: string | undefined,
  file: string,
): string[] {
  if (!runningPath) return [...lines];
  const prefix = `${runningPath}:`;
  return lines.map((line) =>
    line.startsWith(prefix) && /^\d/.test(line.slice(prefix.length))
      ? `${file}:${line.slice(prefix.length)}`
      : line,
  );
}

/** "1 error", "3 errors". */
export const errorCount = (n: number): string => `${n} ${n === 1 ? "error" : "errors"}`;

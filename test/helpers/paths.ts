// Paths tests use to start moat's own processes with the project's Node 24.
import { fileURLToPath } from "node:url";

export const ROOT = fileURLToPath(new URL("../../", import.meta.url));
export const NODE = process.execPath;
export const MOAT = `${ROOT}bin/moat`;
/** Held (flock) while a test runs `make deb` or `make image`: two test files run at a time. */
export const PACKAGING_LOCK = `${ROOT}build/.packaging.lock`;

/** argv to run a TS file with this Node inside network namespace `ns` (keeps /sys/fs/bpf visible). */
export function inNamespace(ns: string, script: string, args: string[] = []): [string, string[]] {
  return [
    "nsenter",
    [`--net=/run/netns/${ns}`, NODE, "--disable-warning=ExperimentalWarning", script, ...args],
  ];
}

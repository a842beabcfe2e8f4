// Running policies that hold only sets, for the tests of what the daemon does with a set's
// entries (dynamic sets, feeds): each set empty in the policy, at a position of its own.
import type { PolicyModel } from "../../src/config/index.ts";

interface EmptySet {
  name: string;
  origin?: Record<string, unknown>;
}

/** A set `name` the policy declares dynamic, with its origin's options (max_entries, …). */
export const dynamicSet = (name: string, options: { maxEntries?: number } = {}): EmptySet => ({
  name,
  origin: { kind: "dynamic", ...options },
});

/** A set `name` with no origin: neither dynamic nor a feed. */
export const plainSet = (name: string): EmptySet => ({ name });

/** A set `name` fed from the plain-text list at `url`. */
export const feedSet = (
  name: string,
  o: { url: string; intervalSeconds: number; maxBytes: number },
): EmptySet => ({ name, origin: { kind: "feed", ...o, format: "plain" } });

/** The running policy of `sets`, none with entries of its own. */
export function setsModel(sets: EmptySet[]): PolicyModel {
  const entries = sets.map((s): [string, unknown] => [
    s.name,
    {
      name: s.name,
      kind: "empty",
      entries: [],
      pos: { file: "p", line: 1, col: 1, path: `sets.${s.name}` },
      ...(s.origin ? { origin: s.origin } : {}),
    },
  ]);
  return { sets: new Map(entries) } as unknown as PolicyModel;
}

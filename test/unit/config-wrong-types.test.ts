// A policy with a value of the wrong type, or a required one missing, anywhere, is refused with
// diagnostics, never an internal error: every node of every example and fixture policy is in
// turn removed and replaced by a value of each other type, and the result is checked. A node
// in the same place as one already checked (the same keys around it and in it, list indexes
// aside: the tenth rule of one kind as the first) is checked once.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { parse } from "yaml";
import { checkPolicySource, textOnlyHost } from "../../src/config/parse.ts";

const files = [
  ...readdirSync("examples")
    .filter((f) => f.endsWith(".yaml"))
    .map((f) => `examples/${f}`),
  ...readdirSync("test/fixtures/policies")
    .filter((f) => f.endsWith(".yaml"))
    .map((f) => `test/fixtures/policies/${f}`),
];

/** Values of every type the schema tells apart: a list in a string too, as a typo makes it. */
const WRONG: unknown[] = ["[GET, HEAD]", 7, true, null, { x: 1 }, ["x"], [{ x: 1 }]];

type Path = (string | number)[];

/** Every node's path under `value` (the root excluded). */
function paths(value: unknown, at: Path = [], out: Path[] = []): Path[] {
  if (Array.isArray(value))
    value.forEach((v, i) => {
      out.push([...at, i]);
      paths(v, [...at, i], out);
    });
  else if (value && typeof value === "object")
    for (const [k, v] of Object.entries(value)) {
      out.push([...at, k]);
      paths(v, [...at, k], out);
    }
  return out;
}

/** Where a node is, for the checks: its path without list indexes, its siblings and its shape. */
function place(data: unknown, path: Path): string {
  let parent = data as Record<string | number, unknown>;
  for (const seg of path.slice(0, -1)) parent = parent[seg] as Record<string | number, unknown>;
  const node = parent[path.at(-1)!];
  const keys = (v: unknown) =>
    Array.isArray(v) ? "[]" : v && typeof v === "object" ? Object.keys(v).sort().join() : typeof v;
  const at = path.map((seg) => (typeof seg === "number" ? "*" : seg)).join(".");
  return `${at}|${keys(parent)}|${keys(node)}`;
}

/** A copy of `data` with the node at `path` replaced (or removed: `remove`). */
function changed(data: unknown, path: Path, replacement: unknown, remove: boolean): unknown {
  const copy = structuredClone(data) as Record<string | number, unknown>;
  let parent: Record<string | number, unknown> = copy;
  for (const seg of path.slice(0, -1)) parent = parent[seg] as Record<string | number, unknown>;
  const last = path.at(-1)!;
  if (!remove) parent[last] = replacement;
  else if (Array.isArray(parent)) parent.splice(last as number, 1);
  else delete parent[last];
  return copy;
}

test("a value of the wrong type or a missing one anywhere in a policy is a diagnostic, never an internal error", () => {
  let checked = 0;
  const crashes: string[] = [];
  const places = new Set<string>();
  for (const file of files) {
    const data: unknown = parse(readFileSync(file, "utf8"));
    for (const path of paths(data)) {
      const where = place(data, path);
      if (places.has(where)) continue;
      places.add(where);
      for (const [replacement, remove] of [
        [undefined, true],
        ...WRONG.map((w) => [w, false] as const),
      ] as const) {
        const text = JSON.stringify(changed(data, path, replacement, remove));
        try {
          checkPolicySource(text, "/etc/moat/policy.yaml", textOnlyHost);
        } catch (err) {
          const what = remove ? "removed" : `set to ${JSON.stringify(replacement)}`;
          crashes.push(`${file} ${path.join(".")} ${what}: ${(err as Error).message}`);
        }
        checked++;
      }
    }
  }
  assert.ok(checked > 3_000, `${checked} policies checked`);
  assert.deepEqual(crashes, [], `${crashes.length} of ${checked} policies crashed`);
});

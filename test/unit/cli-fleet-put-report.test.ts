// moat fleet put --wait: the status report a host writes itself is printed escaped, and a report
// that is not moat's shape is said so, never thrown over.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { putPolicy } from "../../src/cli/commands/fleet-rollout.ts";

const EVIL = "\x1b]0;PWNED\x07\x1b[2J\rapplied: fine\x9b31m\u202egpj\u061c";

/** putPolicy against a bucket whose watch yields `report`, with what it printed. */
async function put(report: unknown) {
  const dir = mkdtempSync(join(tmpdir(), "moat-fleet-put-"));
  const file = join(dir, "policy.yaml");
  writeFileSync(file, "version: 1\nmode: detect\nattach: { cgroup: / }\n");
  const kv = {
    put: async () => 5,
    watch: async () =>
      Object.assign(
        (async function* () {
          yield {
            operation: "PUT",
            json: () => {
              if (report instanceof Error) throw report;
              return report;
            },
          };
        })(),
        { stop: () => {} },
      ),
  };
  const nc = { jetstream: () => ({ views: { kv: async () => kv } }) } as never;
  const lines: string[] = [];
  const io = { out: (l: string) => lines.push(l), err: (l: string) => lines.push(l) };
  try {
    const rc = await putPolicy(
      nc,
      { bucket: "moat-policy" } as never,
      ["web1", file],
      { wait: "1s" },
      io as never,
    );
    return { rc, lines };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

// eslint-disable-next-line no-control-regex -- it looks for control characters
const RAW = /[\u0000-\u001f\u007f-\u009f\u061c\u202e]/;

test("the host's errors are printed escaped", async () => {
  const { rc, lines } = await put({
    host: "web1",
    result: "refused",
    revision: 5,
    applied_revision: 5,
    generation: 7,
    errors: [`e${EVIL}`, `policy.web1:1:1 ${EVIL}`],
    time: "2024-01-01T00:00:00Z",
  });
  assert.equal(rc, 1);
  for (const l of lines) assert.doesNotMatch(l, RAW, JSON.stringify(l));
  assert.match(lines.join("\n"), /e\\x1b\]0;PWNED\\x07\\x1b\[2J\\rapplied/);
});

test("a moat report still prints as before", async () => {
  const { rc, lines } = await put({
    host: "web1",
    result: "refused",
    revision: 5,
    applied_revision: 4,
    generation: 3,
    errors: ["policy.web1:1:1 mode: bad"],
    time: "2024-01-01T00:00:00Z",
  });
  assert.equal(rc, 1);
  assert.deepEqual(lines, [
    "moat-policy/policy.web1 revision 5: refused by web1 (generation 3)",
    "policy.web1:1:1 mode: bad",
  ]);
});

test("a report that is not moat's is said so, not thrown over", async () => {
  for (const report of [
    null,
    "applied",
    { revision: 9, result: "applied" },
    { revision: 9, result: `applied${EVIL}`, generation: 1, errors: [] },
    { revision: 9, result: "applied", generation: `7${EVIL}`, errors: [] },
    { revision: 9, result: "applied", generation: 1, errors: "x" },
    { revision: 9, result: "applied", generation: 1, errors: [{ toString: 1 }] },
    new SyntaxError("not JSON"),
  ]) {
    const { rc, lines } = await put(report);
    assert.equal(rc, 1, JSON.stringify(report));
    assert.match(lines.join("\n"), /not moat's|no report/, JSON.stringify(lines));
  }
});

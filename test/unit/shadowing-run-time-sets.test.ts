// A set whose entries change at run time (a dynamic set, a CrowdSec bouncer's, a URL feed's) is,
// for the "can never match" warning, any address it may come to hold: an earlier rule over one
// that is empty now does not hide a later rule (it matches once the set fills), and one that
// holds addresses now may lose them. Sets fixed by the policy's files are compared as they are.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { checkPolicySource, formatDiagnostic } from "../../src/config/index.ts";
import { nodeHost } from "../../src/host/policy-files.ts";

/** `moat check`'s lines for a policy with `sets` and these `rules`, its store in a temp folder. */
function check(sets: string, rules: [name: string, remote: string][], stored = {}): string[] {
  const dir = mkdtempSync(join(tmpdir(), "moat-shadow-rt-"));
  try {
    mkdirSync(join(dir, "sets"));
    for (const [file, text] of Object.entries(stored))
      writeFileSync(join(dir, "sets", file), text as string);
    writeFileSync(join(dir, "key"), "k", { mode: 0o600 });
    const text = `version: 1
mode: prevent
sets:
${sets}
rules:
${rules
  .map(
    ([name, remote]) => `  - name: ${name}
    direction: ingress
    action: block
    layer3: { remote: [${remote}] }`,
  )
  .join("\n")}
`;
    const got = checkPolicySource(text, join(dir, "p.yaml"), {
      ...nodeHost,
      setStore: join(dir, "sets"),
    });
    return got.diagnostics.map((d) => formatDiagnostic(d).replace(`${dir}/`, ""));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const SETS = `  cs: { dynamic: true, crowdsec: { url: "http://127.0.0.1:8080", key_file: key } }
  banned: { dynamic: true }
  feed: { url: "http://127.0.0.1:1/drop.txt" }
  corp: [10.0.0.0/8]`;

test("an earlier rule over an empty run-time set does not hide the later rules", () => {
  assert.deepEqual(
    check(SETS, [
      ["cs-block", "set:cs"],
      ["banned", "set:banned"],
      ["feed-block", "set:feed"],
      ["one", "10.1.2.3"],
    ]),
    [],
  );
});

test("an earlier rule over a run-time set holding addresses now does not hide them", () => {
  const later = Date.now() + 3_600_000;
  assert.deepEqual(
    check(
      SETS,
      [
        ["banned", "set:banned"],
        ["one", "10.1.2.3"],
      ],
      {
        "banned.dynamic": `10.0.0.0/8 # expires ${Math.ceil(later / 1000)}\n`,
      },
    ),
    [],
  );
});

test("a set of the policy's own still hides what it covers, a run-time set after it too", () => {
  assert.deepEqual(
    check(SETS, [
      ["corp", "set:corp"],
      ["one", "10.1.2.3"],
      ["cs", "set:cs"],
    ]),
    [
      "p.yaml:13:5 rules[1]: warning: rule 'one' can never match: rule 'corp' (earlier, line 9) matches everything it matches",
    ],
  );
});

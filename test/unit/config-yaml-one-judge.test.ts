// Whether a policy is valid YAML is decided the same way whatever else the file holds: text the
// yaml library refuses is refused with its messages when nothing else is wrong too, not only when
// another error makes the loader read the file again with positions. The readers that are faster
// than the yaml library read only what they can vouch for and leave the rest to it.
import { test } from "node:test";
import assert from "node:assert/strict";
import { checkPolicySource, textOnlyHost } from "../../src/config/index.ts";

const lines = (text: string) =>
  checkPolicySource(text, "p.yaml", textOnlyHost).diagnostics.map(
    (d) => `${d.line}:${d.col} ${d.severity} ${d.path}: ${d.message}`,
  );

const HEAD =
  "version: 1\nmode: prevent\nrules:\n  - name: web\n    direction: ingress\n    action: allow\n";

/** A message about a file with one more line after the first, as about the file without it. */
const lineBefore = (message: string) =>
  message.replace(/^(\d+):/, (_, line: string) => `${Number(line) > 1 ? Number(line) - 1 : 1}:`);

/** Text the yaml library refuses, each in an otherwise valid policy. */
const REFUSED: Record<string, string> = {
  "a flow sequence continued below its key's column":
    HEAD + "    layer4: { protocol: tcp, port: [80,\n  443] }\n",
  "a flow sequence continued at its key's column":
    HEAD + "    layer4: { protocol: tcp, port: [80,\n    443] }\n",
  "a quoted scalar continued at its key's column": HEAD.replace(
    "action: allow",
    'action: "al\\\n    low"',
  ),
  "a quoted scalar in a flow mapping continued below its key's column":
    HEAD + '    process: { name: "cu\\\n  rl" }\n',
  "a comment right after a flow sequence":
    HEAD + "    layer4: { protocol: tcp, port: [80]# c\n    }\n",
  "a comment right after a flow mapping": HEAD + "    layer4: { protocol: tcp, port: [80] }# c\n",
  "a comment right after a quoted scalar": HEAD.replace("action: allow", 'action: "allow"# c'),
  "a comment right after a comma": HEAD + "    layer4: { protocol: tcp,# c\n      port: 80 }\n",
  "content on the document start line": `--- version: 1\n${HEAD.slice("version: 1\n".length)}`,
  "a colon over 1024 characters after its key's start": HEAD.replace(
    "mode: prevent",
    `mode${" ".repeat(1100)}: prevent`,
  ),
  "a tab indenting a flow continuation":
    HEAD + "    layer4: { protocol: tcp, port: [80,\n\t443] }\n",
};

test("YAML the yaml library refuses is refused with its messages, with or without another error", () => {
  const wrong: string[] = [];
  for (const [what, text] of Object.entries(REFUSED)) {
    const alone = lines(text);
    const another = text.replace("version: 1\n", "version: 1\nbogus: 1\n");
    assert.notEqual(another, text, what);
    if (!alone.some((l) => l.includes(" error (yaml): "))) wrong.push(`${what}: accepted`);
    else if (lines(another).map(lineBefore).join("\n") !== alone.join("\n"))
      wrong.push(`${what}: other messages once another error is added`);
  }
  assert.deepEqual(wrong, []);
});

test("the same constructs written the way the yaml library reads them are accepted", () => {
  const fine = [
    HEAD + "    layer4: { protocol: tcp, port: [80,\n      443] }\n",
    HEAD + "    layer4: { protocol: tcp, port: [80,\n      443]\n    }\n",
    HEAD.replace("action: allow", 'action: "al\\\n      low"'),
    HEAD + '    process: { name: "cu\\\n      rl" }\n',
    HEAD + "    layer4: { protocol: tcp, port: [80] } # c\n",
    HEAD.replace("action: allow", 'action: "allow" # c'),
    HEAD + "    layer4: { protocol: tcp, port: [80,\n     \t 443] }\n",
    `--- # policy\n${HEAD}    layer4: { protocol: tcp, port: [80] }\n`,
  ];
  for (const text of fine) {
    const errors = lines(text).filter((l) => l.includes(" error "));
    assert.deepEqual(errors, [], text);
  }
});

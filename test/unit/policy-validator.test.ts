// The policy validator is compiled from the schema split into sections (splitSchema), so a small
// policy's check compiles only the sections it has. It must accept, refuse and report exactly as
// the schema compiled whole does: checked on random breakages of every example policy.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { Ajv, type ErrorObject } from "ajv";
import { parse } from "yaml";
import { splitSchema, validatePolicy } from "../../src/config/policy-validator.ts";
import { PolicySchema } from "../../src/config/schema.ts";
import { ROOT } from "../helpers/paths.ts";

type Node = Record<string, unknown>;

function wholeValidator() {
  const ajv = new Ajv({ allErrors: true, verbose: true, strict: true });
  ajv.addKeyword({ keyword: "errorMessage", schemaType: "string" });
  return ajv.compile(PolicySchema);
}

/**
 * What the error messages read of the errors: all but the schema paths, which splitting moves;
 * of those, which union (anyOf) each error falls under, as the messages group a union's branches.
 */
function seen(errors: ErrorObject[] | null | undefined): unknown[] {
  const all = errors ?? [];
  const unions = all.filter((u) => u.keyword === "anyOf");
  return all.map((e) => {
    const parent = e.parentSchema as Node | undefined;
    return {
      instancePath: e.instancePath,
      keyword: e.keyword,
      params: e.params,
      message: e.message,
      data: e.data,
      errorMessage: parent?.errorMessage,
      properties: Object.keys((parent?.properties as Node | undefined) ?? {}),
      underUnions: unions
        .map((u, i) => (e.schemaPath.startsWith(`${u.schemaPath}/`) ? i : -1))
        .filter((i) => i >= 0),
    };
  });
}

const BAD_VALUES: unknown[] = [
  42,
  -1,
  "x",
  "",
  [],
  {},
  { bogus: 1 },
  [1, "a"],
  true,
  null,
  "tcpp",
  70000,
  "1.2.3.4/33",
  { file: 1 },
  { url: "u", interval: [] },
  { dynamic: true, crowdsec: { interval: {} } },
  { protocol: "tcpp" },
  { port: ["x-y", -3] },
];
const KEYS = ["bogus", "mode", "rules", "layer4", "port", "name", "sets", "flood", "protocol"];

test("the split validator judges and reports every broken example as the whole schema does", () => {
  const whole = wholeValidator();
  const docs = readdirSync(join(ROOT, "examples"))
    .filter((f) => f.endsWith(".yaml"))
    .map((f) => parse(readFileSync(join(ROOT, "examples", f), "utf8")) as Node);
  let seed = 5;
  const pick = (n: number): number => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return seed % n;
  };
  const nodesOf = (v: unknown, out: Node[] = []): Node[] => {
    if (v && typeof v === "object") {
      out.push(v as Node);
      for (const x of Object.values(v)) nodesOf(x, out);
    }
    return out;
  };
  let refused = 0;
  for (let i = 0; i < 3000; i++) {
    const doc = structuredClone(docs[pick(docs.length)]!);
    for (let m = 0; m <= pick(3); m++) {
      const nodes = nodesOf(doc);
      const node = nodes[pick(nodes.length)]!;
      const keys = Object.keys(node);
      const value = structuredClone(BAD_VALUES[pick(BAD_VALUES.length)]);
      if (keys.length === 0 || pick(4) === 0) node[KEYS[pick(KEYS.length)]!] = value;
      else if (pick(5) === 0) delete node[keys[pick(keys.length)]!];
      else node[keys[pick(keys.length)]!] = value;
    }
    const ok = whole(doc);
    assert.equal(validatePolicy(doc), ok, JSON.stringify(doc));
    assert.deepEqual(seen(validatePolicy.errors), seen(whole.errors), JSON.stringify(doc));
    if (!ok) refused++;
  }
  assert.ok(refused > 1000, `only ${refused} of 3000 broken policies were refused`);
});

test("the rules' sections and the policy's large sections are functions of their own", () => {
  const defs = Object.keys(splitSchema(PolicySchema).$defs as Node);
  for (const name of ["policy.rules.items", "policy.rules.items.layer4", "policy.flood.syn"])
    assert.ok(defs.includes(name), `${name} is not split out: ${defs.join(", ")}`);
});

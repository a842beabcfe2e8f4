// The published JSON Schema is generated from the TypeBox source and must not drift from it.

import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { Ajv } from "ajv";
import { parse } from "yaml";
import { publishedSchemaText } from "../../src/config/json-schema.ts";

const SCHEMA_FILE = "schema/moat.schema.json";

test("schema/moat.schema.json is what src/config/schema.ts generates", () => {
  const committed = readFileSync(SCHEMA_FILE, "utf8");
  assert.ok(
    committed === publishedSchemaText(),
    `${SCHEMA_FILE} is stale: regenerate it with 'node scripts/gen-schema.ts' and commit the result`,
  );
});

test("the published schema, used alone (as an editor would), accepts the examples and the full fixture", () => {
  const ajv = new Ajv({ allErrors: true, strict: false });
  const validate = ajv.compile(JSON.parse(readFileSync(SCHEMA_FILE, "utf8")) as object);
  for (const file of [
    "examples/default.yaml",
    "examples/server.yaml",
    "examples/workstation.yaml",
    "test/fixtures/policies/full.yaml",
  ]) {
    const ok = validate(parse(readFileSync(file, "utf8")));
    assert.ok(ok, `${file}: ${JSON.stringify(validate.errors)}`);
  }
  assert.equal(
    validate({ version: 1, rules: [{ name: "x", direction: "in", action: "allow" }] }),
    false,
  );
  assert.equal(validate({ version: 1, colour: "red" }), false);
  // the dns section: resolvers and the two durations, nothing else
  assert.equal(
    validate({ version: 1, dns: { resolvers: ["10.0.0.53"], min_ttl: "5s", grace: 30 } }),
    true,
  );
  assert.equal(validate({ version: 1, dns: { ttl: 5 } }), false);
  assert.equal(validate({ version: 1, dns: { min_ttl: -1 } }), false);
});

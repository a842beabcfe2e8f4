// The published JSON Schema (schema/moat.schema.json) as generated from the TypeBox source.

import { PolicySchema } from "./schema.ts";

/** Plain JSON (TypeBox's symbol-keyed markers dropped), stable key order, trailing newline. */
export function publishedSchemaText(): string {
  const schema = {
    $schema: "http://json-schema.org/draft-07/schema#",
    ...(JSON.parse(JSON.stringify(PolicySchema)) as object),
  };
  return `${JSON.stringify(schema, null, 2)}\n`;
}

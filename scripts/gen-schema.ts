// Writes schema/moat.schema.json from the TypeBox source (src/config/schema.ts).
// Run: node scripts/gen-schema.ts   (test/unit/config-schema.test.ts fails when it is stale)

import { mkdirSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { publishedSchemaText } from "../src/config/json-schema.ts";

const target = fileURLToPath(new URL("../schema/moat.schema.json", import.meta.url));
mkdirSync(fileURLToPath(new URL("../schema/", import.meta.url)), { recursive: true });
writeFileSync(target, publishedSchemaText());
console.log(`wrote ${target}`);

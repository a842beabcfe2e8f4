// src/config/policy-validator.ts as Ajv standalone code, for the bundles (the CLI's, the web
// console's): the schema compiled once at build time with the same settings, so a bundle neither
// compiles it at every start nor evaluates generated code (the console's pages may not: CSP).
import type { Plugin } from "esbuild";
import { join } from "node:path";
// a CommonJS module: Node's default import is module.exports, whose .default is the function
import standaloneModule from "ajv/dist/standalone/index.js";
import { policyAjv, splitSchema } from "../src/config/policy-validator.ts";
import { PolicySchema } from "../src/config/schema.ts";

type Standalone = (ajv: unknown, validate: unknown) => string;
const loaded = standaloneModule as unknown as Standalone | { default: Standalone };
const standalone = typeof loaded === "function" ? loaded : loaded.default;

export function standaloneValidator(srcDir: string): Plugin {
  return {
    name: "moat-policy-validator",
    setup(b) {
      b.onLoad({ filter: /[\\/]src[\\/]config[\\/]policy-validator\.ts$/ }, () => {
        const ajv = policyAjv({ code: { source: true, esm: true } });
        const code = withoutRequire(standalone(ajv, ajv.compile(splitSchema(PolicySchema))));
        return {
          contents: `${code}\nexport { validate as validatePolicy };\n`,
          loader: "js",
          resolveDir: join(srcDir, "config"),
        };
      });
    },
  };
}

/** Ajv's name for its string-length helper in standalone code (CommonJS, even with `esm`). */
const UCS2_REQUIRE = 'require("ajv/dist/runtime/ucs2length").default';

/**
 * The standalone code with its one `require` replaced by a function of its own: the daemon's
 * bundle keeps npm packages outside as ES modules, where `require` does not exist. (The length
 * of a string in code points, as JSON Schema's minLength and maxLength count it.)
 */
function withoutRequire(code: string): string {
  const own = code.replaceAll(UCS2_REQUIRE, "moatCodePoints");
  if (own.includes("require("))
    throw new Error("the policy validator's standalone code requires a module: import it");
  return `${own}
function moatCodePoints(text) {
  let n = 0;
  for (const _ of text) n++;
  return n;
}
`;
}

// The policy document's JSON Schema validator (Ajv). Run from source it is compiled when this
// module loads; the CLI bundle (scripts/build-cli.ts) replaces this module with the same
// validator as Ajv standalone code generated at build time, so `moat check` does not compile
// the schema at every start.
import { Ajv, type Options, type ValidateFunction } from "ajv";
import { PolicySchema } from "./schema.ts";

/** The Ajv the validator is compiled with (build-cli.ts adds the standalone-code option). */
export function policyAjv(extra: Options = {}): Ajv {
  const ajv = new Ajv({ allErrors: true, verbose: true, strict: true, ...extra });
  // an annotation: the message the loader shows when a value fails this schema
  ajv.addKeyword({ keyword: "errorMessage", schemaType: "string" });
  return ajv;
}

export const validatePolicy: ValidateFunction = policyAjv().compile(PolicySchema);

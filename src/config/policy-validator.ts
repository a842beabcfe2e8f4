// The policy document's JSON Schema validator (Ajv). Run from source it is compiled at its first
// call; the CLI bundle (scripts/build-cli.ts) replaces this module with the same
// validator as Ajv standalone code generated at build time, so `moat check` does not compile
// the schema at every start.
import { Ajv, type ErrorObject, type Options, type ValidateFunction } from "ajv";
import { PolicySchema } from "./schema.ts";

/** The Ajv the validator is compiled with (build-cli.ts adds the standalone-code option). */
export function policyAjv(extra: Options = {}): Ajv {
  // inlineRefs off: each of splitSchema's $defs is a function of its own
  const ajv = new Ajv({
    allErrors: true,
    verbose: true,
    strict: true,
    inlineRefs: false,
    ...extra,
  });
  // an annotation: the message the loader shows when a value fails this schema
  ajv.addKeyword({ keyword: "errorMessage", schemaType: "string" });
  return ajv;
}

/** A sub-schema this large (as JSON) becomes a function of its own. */
const SPLIT_BYTES = 400;

type SchemaNode = Record<string, unknown>;
const isNode = (v: unknown): v is SchemaNode => typeof v === "object" && v !== null;

/**
 * The schema the validator is compiled from: the policy schema with each large section
 * (a property's or a list item's schema, outside unions) moved to `$defs` and referenced. Ajv
 * makes each one a function of its own, which V8 compiles the first time a policy has that
 * section: one function for the whole schema is ~0.5 MB of code that every `moat check` compiled
 * in full. It accepts and refuses what the schema does, with the same errors; unions stay whole,
 * as the error messages read a union's branches by their schema paths.
 */
export function splitSchema(schema: object): SchemaNode {
  const root = JSON.parse(JSON.stringify(schema)) as SchemaNode;
  const defs: SchemaNode = {};
  const split = (node: SchemaNode, name: string): void => {
    const properties = node.properties;
    if (isNode(properties))
      for (const [key, child] of Object.entries(properties))
        if (isNode(child)) properties[key] = hoist(child, `${name}.${key}`);
    if (isNode(node.items)) node.items = hoist(node.items, `${name}.items`);
  };
  const hoist = (node: SchemaNode, name: string): SchemaNode => {
    split(node, name);
    if (JSON.stringify(node).length < SPLIT_BYTES) return node;
    defs[name] = node;
    return { $ref: `#/$defs/${name}` };
  };
  split(root, "policy");
  return { ...root, $defs: defs };
}

/** What checkSchema calls: true or false, and the errors of the last call that returned false. */
export interface PolicyValidator {
  (data: unknown): boolean;
  errors?: ErrorObject[] | null;
}

let compiled: ValidateFunction | undefined;

/**
 * Compiled at its first call, not when this module loads: the daemon's thread imports the policy
 * code it shares with the policy worker, which alone validates policies; compiling the schema
 * there too cost each daemon start ~0.25 s of CPU.
 */
export const validatePolicy: PolicyValidator = (data) => {
  compiled ??= policyAjv().compile(splitSchema(PolicySchema));
  const valid = compiled(data);
  validatePolicy.errors = compiled.errors;
  return valid;
};

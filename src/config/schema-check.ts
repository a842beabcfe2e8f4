// Validates the plain YAML data against the JSON Schema and turns ajv's errors into one readable
// diagnostic each, at the position of the offending node.

import type { ErrorObject } from "ajv";
import { diagnostic, type Diagnostic } from "./diagnostics.ts";
import { validatePolicy } from "./policy-validator.ts";
import { plainPos } from "./positions.ts";
import { formatPath, type PathSegment, type CheckedSource } from "./yaml-source.ts";

/** An error the schema found, with the instance path split into segments. */
export interface SchemaProblem {
  path: PathSegment[];
  keyword: string;
}

export interface SchemaCheck {
  diagnostics: Diagnostic[];
  problems: SchemaProblem[];
}

export function checkSchema(source: CheckedSource): SchemaCheck {
  if (validatePolicy(source.data)) return { diagnostics: [], problems: [] };
  const errors = dropRedundantTypeErrors(collapseUnions(validatePolicy.errors ?? []));
  const diagnostics: Diagnostic[] = [];
  const problems: SchemaProblem[] = [];
  const seen = new Set<string>();
  for (const e of errors) {
    const path = pointerToPath(e.instancePath, source.data);
    problems.push({ path, keyword: e.keyword });
    // the missing value itself is not clean either: no check reads it
    if (e.keyword === "required" && typeof e.params.missingProperty === "string")
      problems.push({ path: [...path, e.params.missingProperty], keyword: e.keyword });
    const d = describe(e, path, source);
    const key = `${d.path}\u0000${d.message}`;
    if (!seen.has(key)) {
      seen.add(key);
      diagnostics.push(d);
    }
  }
  return { diagnostics, problems };
}

/**
 * For `anyOf`, keep the errors of the one branch whose type fits the value (a mapping given where a
 * list-or-mapping is allowed is judged as a mapping); otherwise keep only the union's own message.
 * Inner unions first, so an outer union sees the inner one already reduced.
 */
function collapseUnions(input: ErrorObject[]): ErrorObject[] {
  let errors = [...input];
  const unions = errors
    .filter((e) => e.keyword === "anyOf")
    .sort((a, b) => b.schemaPath.length - a.schemaPath.length);
  for (const union of unions) {
    const prefix = `${union.schemaPath}/`;
    const branches = new Map<string, ErrorObject[]>();
    for (const e of errors) {
      // the same schema serves many values (every set, every rule): group by value too
      const under =
        e.instancePath === union.instancePath ||
        e.instancePath.startsWith(`${union.instancePath}/`);
      if (!under || !e.schemaPath.startsWith(prefix)) continue;
      const branch = e.schemaPath.slice(prefix.length).split("/")[0] ?? "";
      branches.set(branch, [...(branches.get(branch) ?? []), e]);
    }
    const fitting = [...branches.entries()].filter(
      ([branch, errs]) =>
        !errs.some(
          (e) =>
            e.instancePath === union.instancePath &&
            (e.schemaPath === `${prefix}${branch}/type` || e.keyword === "anyOf"),
        ),
    );
    const inBranches = new Set([...branches.values()].flat());
    const chosen = fitting.length === 1 ? (fitting[0]?.[1] ?? []) : [];
    // a bad value of the right type ('tcpp' for a protocol) gets the union's message, which
    // names every form; a bad nested field keeps the branch's own precise error
    const valueOnly = chosen.every(
      (e) => e.instancePath === union.instancePath && VALUE_KEYWORDS.has(e.keyword),
    );
    const keep =
      chosen.length > 0 && !(valueOnly && unionMessage(union)) ? new Set(chosen) : new Set([union]);
    errors = errors.filter((e) => (e !== union && !inBranches.has(e)) || keep.has(e));
  }
  return errors;
}

const VALUE_KEYWORDS = new Set(["enum", "const", "pattern"]);

function unionMessage(union: ErrorObject): string | undefined {
  const message = (union.parentSchema as { errorMessage?: unknown } | undefined)?.errorMessage;
  return typeof message === "string" ? message : undefined;
}

/** A type error beside an enum error on the same value says less: keep the enum's list. */
function dropRedundantTypeErrors(errors: ErrorObject[]): ErrorObject[] {
  const enums = new Set(errors.filter((e) => e.keyword === "enum").map((e) => e.instancePath));
  return errors.filter((e) => e.keyword !== "type" || !enums.has(e.instancePath));
}

/** "/rules/2/layer4" -> ["rules", 2, "layer4"] (numbers where the data is a list). */
function pointerToPath(pointer: string, data: unknown): PathSegment[] {
  const path: PathSegment[] = [];
  let here: unknown = data;
  for (const raw of pointer.split("/").slice(1)) {
    const seg = raw.replace(/~1/g, "/").replace(/~0/g, "~");
    if (Array.isArray(here)) {
      path.push(Number(seg));
      here = here[Number(seg)];
    } else {
      path.push(seg);
      here = here && typeof here === "object" ? (here as Record<string, unknown>)[seg] : undefined;
    }
  }
  return path;
}

const TYPE_NAMES: Record<string, string> = {
  array: "a list",
  object: "a mapping",
  string: "a string",
  integer: "a whole number",
  number: "a number",
  boolean: "true or false",
  null: "empty",
};

function typeOf(value: unknown): string {
  if (value === null || value === undefined) return "empty";
  if (Array.isArray(value)) return "a list";
  if (typeof value === "object") return "a mapping";
  if (typeof value === "number") return String(value);
  if (typeof value === "boolean") return `${value}`;
  return `'${String(value)}'`;
}

function describe(e: ErrorObject, path: PathSegment[], source: CheckedSource): Diagnostic {
  const params = e.params as Record<string, unknown>;
  const custom = (e.parentSchema as { errorMessage?: unknown } | undefined)?.errorMessage;
  const got = `, got ${typeOf(e.data)}`;
  switch (e.keyword) {
    case "required": {
      const missing = String(params.missingProperty);
      const at = source.pos(path);
      return diagnostic(
        // a TablePos's file, line and col are getters a spread would not copy
        { ...plainPos(at), path: formatPath([...path, missing]) },
        `missing required property '${missing}'`,
      );
    }
    case "additionalProperties": {
      const extra = String(params.additionalProperty);
      const known = Object.keys(
        (e.parentSchema as { properties?: Record<string, unknown> }).properties ?? {},
      );
      return diagnostic(
        source.keyPos([...path, extra]),
        `unknown property '${extra}'${hint(extra, known)}`,
      );
    }
    case "enum": {
      const allowed = (params.allowedValues as unknown[]).map(String).join(", ");
      return diagnostic(source.pos(path), `must be one of ${allowed}${got}`);
    }
    case "const":
      return diagnostic(source.pos(path), `must be ${JSON.stringify(params.allowedValue)}${got}`);
    case "type": {
      const expected = String(params.type)
        .split(",")
        .map((t) => TYPE_NAMES[t] ?? t)
        .join(" or ");
      const fix =
        params.type === "array" && e.data !== null && typeof e.data !== "object"
          ? ` (write [${String(e.data)}] for a single entry)`
          : "";
      return diagnostic(source.pos(path), `${custom ?? `must be ${expected}`}${got}${fix}`);
    }
    case "minLength":
    case "minItems":
      return diagnostic(source.pos(path), "must not be empty");
    case "minimum":
    case "maximum": {
      const op = e.keyword === "minimum" ? ">=" : "<=";
      return diagnostic(source.pos(path), `must be ${op} ${String(params.limit)}${got}`);
    }
    default:
      return diagnostic(
        source.pos(path),
        typeof custom === "string" ? `${custom}${got}` : (e.message ?? e.keyword),
      );
  }
}

/** "did you mean" for a near miss, else the list of what is allowed there. */
function hint(word: string, known: string[]): string {
  const near = known.filter((k) => editDistance(k, word) <= 2);
  if (near.length > 0) return ` (did you mean '${near[0]}'?)`;
  return known.length > 0 ? ` (expected one of: ${known.join(", ")})` : "";
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++)
      row.push(
        Math.min(
          (prev[j] ?? 0) + 1,
          (row[j - 1] ?? 0) + 1,
          (prev[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1),
        ),
      );
    prev = row;
  }
  return prev[b.length] ?? 0;
}

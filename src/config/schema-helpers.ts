// Small TypeBox builders so the schema files read like the policy language.

import {
  Type,
  type ObjectOptions,
  type TProperties,
  type TSchema,
  type TUnsafe,
} from "@sinclair/typebox";

/** A string from a fixed list; JSON Schema `enum`, so a bad value gets one clear error. */
export function StringEnum<const T extends readonly string[]>(
  values: T,
  description?: string,
): TUnsafe<T[number]> {
  return Type.Unsafe<T[number]>({ type: "string", enum: [...values], description });
}

/** A closed mapping: an unknown key is an error (a typo must not silently do nothing). */
export function Section<T extends TProperties>(properties: T, options: ObjectOptions = {}) {
  return Type.Object(properties, { additionalProperties: false, ...options });
}

/** A list of `items`. (Schemas may carry `errorMessage`: the loader shows it when a value fails.) */
export function List<T extends TSchema>(items: T, description?: string) {
  return Type.Array(items, { description });
}

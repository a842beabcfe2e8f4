// Reading the runtimes' JSON state files defensively: they are other programs' files, written
// while we read them, in formats that change between versions.

import { readFileSync } from "node:fs";
import type { ContainerFacts } from "../types.ts";

/** A container found in a runtime's state, and the file that said so (for cache invalidation). */
export interface StateHit {
  container: ContainerFacts;
  file: string;
}

/** The parsed file; undefined if it is missing, unreadable or not (yet complete) JSON. */
export function readJson(file: string): unknown {
  try {
    return JSON.parse(readFileSync(file, "utf8"));
  } catch {
    return undefined;
  }
}

/** obj[k1][k2]... as unknown, undefined where a step is not an object. */
export function field(obj: unknown, ...path: string[]): unknown {
  let at = obj;
  for (const key of path) {
    if (at === null || typeof at !== "object") return undefined;
    at = (at as Record<string, unknown>)[key];
  }
  return at;
}

export function text(value: unknown): string | undefined {
  return typeof value === "string" && value !== "" ? value : undefined;
}

/** The first string of a JSON array. */
export function first(value: unknown): string | undefined {
  return Array.isArray(value) ? text(value[0]) : undefined;
}

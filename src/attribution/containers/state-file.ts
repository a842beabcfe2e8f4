// Reading the runtimes' JSON state files defensively: they are other programs' files, written
// while we read them, in formats that change between versions.

import { closeSync, constants, fstatSync, openSync, readFileSync } from "node:fs";
import type { ContainerFacts } from "../types.ts";

/** A bigger state file is not read (podman's containers.json of thousands of containers is less). */
export const MAX_STATE_BYTES = 64 * 2 ** 20;

/** A container found in a runtime's state, and the file that said so (for cache invalidation). */
export interface StateHit {
  container: ContainerFacts;
  file: string;
}

/**
 * The parsed file; undefined if it is missing, unreadable, not (yet complete) JSON, not a regular
 * file (O_NONBLOCK: a FIFO a user put in their home never blocks the daemon), a symlink, larger
 * than MAX_STATE_BYTES, or, with `owner`, owned by another uid.
 */
export function readJson(file: string, owner?: number): unknown {
  let fd: number;
  try {
    fd = openSync(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch {
    return undefined;
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile() || st.size > MAX_STATE_BYTES) return undefined;
    if (owner !== undefined && st.uid !== owner) return undefined;
    return JSON.parse(readFileSync(fd, "utf8"));
  } catch {
    return undefined;
  } finally {
    closeSync(fd);
  }
}

/**
 * A containers/storage root; `owner`: a user's own (rootless podman in their home), whose files
 * count only when that uid owns them.
 */
export type StorageRoot = string | { path: string; owner: number };

export const rootPath = (root: StorageRoot): string =>
  typeof root === "string" ? root : root.path;
export const rootOwner = (root: StorageRoot): number | undefined =>
  typeof root === "string" ? undefined : root.owner;

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

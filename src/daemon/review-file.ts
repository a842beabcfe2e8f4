// The file the review queue is kept in, beside the local decisions (default
// /var/lib/moat/review.json): `{"version": 1, "overflow": N, "entries": [...]}`, 0600, written
// to a temporary file and renamed over the old one. Read with entries that are not entries left
// out, each said.
import { dirname, join } from "node:path";
import type { ReviewEntry, ReviewView } from "../api/index.ts";
import { readTrustedFile, UnsafeFileError, writeTrustedFileAtomic } from "../host/index.ts";

const VERSION = 1;

/** The review queue's file beside the decisions file. */
export const reviewPathOf = (decisionsPath: string): string =>
  join(dirname(decisionsPath), "review.json");

const WHAT = "review queue file";
/**
 * A larger file is refused. The queue keeps a bounded number of entries, each at most about
 * 36 KiB written: an executable's path (4,095 bytes, 6 characters each as JSON escapes a control
 * character), 8 names of 1,265 characters each written, the rest; 1000 of them fit.
 */
const MAX_BYTES = 64 * 2 ** 20;

export function writeReviewFile(path: string, view: ReviewView): void {
  const text = JSON.stringify({ version: VERSION, overflow: view.overflow, entries: view.entries });
  // in a checked directory, by a temporary file no one could have planted (trusted-file.ts)
  writeTrustedFileAtomic(path, `${text}\n`, { what: WHAT });
}

const isEntry = (v: unknown): v is ReviewEntry => {
  const e = v as Partial<ReviewEntry> | null;
  return (
    typeof e === "object" &&
    e !== null &&
    typeof e.id === "string" &&
    (e.direction === "ingress" || e.direction === "egress") &&
    typeof e.protocol === "string" &&
    typeof e.remote?.ip === "string" &&
    (e.verdict === "detected" || e.verdict === "blocked") &&
    typeof e.first === "string" &&
    typeof e.last === "string" &&
    Number.isInteger(e.count)
  );
};

/** The stored queue; a missing file is an empty one; an unreadable one throws. */
export function readReviewFile(path: string): {
  entries: ReviewEntry[];
  overflow: number;
  notes: string[];
} {
  let text: string;
  try {
    text = readTrustedFile(path, { what: WHAT, maxBytes: MAX_BYTES });
  } catch (err) {
    if (err instanceof UnsafeFileError && err.missing)
      return { entries: [], overflow: 0, notes: [] };
    throw err;
  }
  const saved = JSON.parse(text) as { version?: unknown; overflow?: unknown; entries?: unknown };
  if (saved.version !== VERSION || !Array.isArray(saved.entries))
    throw new Error(`not a version ${VERSION} review queue`);
  const notes: string[] = [];
  const entries: ReviewEntry[] = [];
  for (const e of saved.entries as unknown[]) {
    if (isEntry(e)) entries.push(e);
    else notes.push("a stored review queue entry is dropped: not an entry");
  }
  const overflow = Number.isInteger(saved.overflow) ? (saved.overflow as number) : 0;
  return { entries, overflow, notes };
}

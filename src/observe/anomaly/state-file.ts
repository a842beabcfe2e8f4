// The anomaly engine's state on disk (profiles, acceptances, recent anomalies), so baselines and
// "accept as normal" survive a restart: one JSON file, written whole to a temporary file and
// renamed over the old one (its name random, made O_EXCL|O_NOFOLLOW: nothing planted there is
// written through). It is read as moat reads every file it trusts (root's, in root's directories,
// not writable by others: an acceptance in it silences an anomaly) and checked whole before the
// engine takes any of it; a file that cannot be read, or is damaged, is refused with what is
// wrong, and the engine starts without it.
import { randomBytes } from "node:crypto";
import { constants } from "node:fs";
import { open, rename, rm } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import {
  readTrustedFile,
  trustedDirectory,
  UnsafeFileError,
  writeTrustedFileAtomic,
} from "../../host/trusted-file.ts";
import type { AnomalyDetector } from "./detector.ts";
import { Ewma } from "./robust.ts";
import { checkedState } from "./state-shape.ts";

const VERSION = 1;
const WHAT = "anomaly state file";
/** Larger than any state the engine keeps (and than the longest text JSON can parse). */
const MAX_BYTES = 512 << 20;

/** Maps, sets and EWMAs as tagged JSON values. */
function replacer(_key: string, value: unknown): unknown {
  if (value instanceof Map) return { $map: [...value.entries()] };
  if (value instanceof Set) return { $set: [...value] };
  if (value instanceof Ewma)
    return {
      $ewma: [value.alpha, value.mean, value.variance, value.samples],
    };
  return value;
}

function reviver(_key: string, value: unknown): unknown {
  if (value && typeof value === "object" && !Array.isArray(value)) {
    const v = value as { $map?: [unknown, unknown][]; $set?: unknown[]; $ewma?: number[] };
    if (v.$map) return new Map(v.$map);
    if (v.$set) return new Set(v.$set);
    if (v.$ewma) {
      const [alpha = 0, mean = 0, variance = 0, samples = 0] = v.$ewma;
      const e = new Ewma(alpha);
      Object.assign(e, { mean, variance, samples });
      return e;
    }
  }
  return value;
}

/** The state's JSON text in pieces: the head, one piece a profile, the tail. */
function* stateText(d: AnomalyDetector): Generator<string> {
  yield `{"version":${VERSION},"profiles":{"$map":[`;
  let first = true;
  for (const entry of d.profiles) {
    yield (first ? "" : ",") + JSON.stringify(entry, replacer);
    first = false;
  }
  const rest = JSON.stringify(
    { accepted: d.accepted, reportedAt: d.reportedAt, recent: d.recent },
    replacer,
  );
  yield `]},${rest.slice(1)}`;
}

/** Writes the state at once (at shutdown, after an acceptance). */
export function saveAnomalyState(path: string, d: AnomalyDetector): void {
  writeTrustedFileAtomic(path, [...stateText(d)].join(""), { what: WHAT });
}

/** How long the periodic save holds the event loop at a time. */
const SLICE_MS = 5;

/**
 * The same file, made a few profiles at a time between turns of the event loop: the state of
 * hundreds of identities is tens of MB of JSON, 0.5-1.7 s in one piece. Each profile is written
 * as it is when its turn comes.
 */
export async function saveAnomalyStateInSlices(
  path: string,
  d: AnomalyDetector,
  /** A newer state was saved meanwhile (saveAnomalyState): this one is dropped, not renamed over it. */
  stale: () => boolean = () => false,
): Promise<void> {
  // as writeTrustedFileAtomic does, in a directory only root can write (made 0700 if missing)
  const dir = trustedDirectory(dirname(path), { what: WHAT, create: true });
  const tmp = join(dir, `.${basename(path)}.${randomBytes(8).toString("hex")}.tmp`);
  const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;
  const file = await open(tmp, flags, 0o600);
  try {
    // written as it is made, a slice at a time: the whole text is never one string
    let slice: string[] = [];
    let sliceStart = performance.now();
    for (const piece of stateText(d)) {
      slice.push(piece);
      if (performance.now() - sliceStart < SLICE_MS) continue;
      await file.write(slice.join(""));
      slice = [];
      sliceStart = performance.now();
    }
    await file.write(slice.join(""));
  } catch (err) {
    await file.close();
    await rm(tmp, { force: true });
    throw err;
  }
  await file.close();
  if (stale()) await rm(tmp, { force: true });
  else
    await rename(tmp, join(dir, basename(path))).catch(async (err: unknown) => {
      await rm(tmp, { force: true });
      throw err;
    });
}

/**
 * Loads the saved state into `d`: false (d unchanged) when there is none; throws, d unchanged,
 * when the file is not to be trusted or not a state this version wrote, saying why.
 */
export function loadAnomalyState(path: string, d: AnomalyDetector): boolean {
  let text: string;
  try {
    text = readTrustedFile(path, { what: WHAT, maxBytes: MAX_BYTES });
  } catch (err) {
    if (err instanceof UnsafeFileError) {
      if (err.missing) return false;
      throw err;
    }
    throw new Error(`${WHAT} ${path}: ${(err as Error).message}`, { cause: err });
  }
  let saved: ReturnType<typeof checkedState>;
  try {
    const parsed = JSON.parse(text, reviver) as { version?: unknown };
    if (parsed?.version !== VERSION) throw new Error(`is not a version ${VERSION} state`);
    saved = checkedState(parsed);
  } catch (err) {
    throw new Error(`${WHAT} ${path}: ${(err as Error).message}`, { cause: err });
  }
  for (const [k, v] of saved.profiles) d.profiles.set(k, v);
  for (const [k, v] of saved.accepted) d.accepted.set(k, v);
  for (const [k, v] of saved.reportedAt) d.reportedAt.set(k, v);
  d.recent = saved.recent;
  return true;
}

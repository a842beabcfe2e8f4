// The body of POST /v1/policy/replay: {text, since?, until?, baseline?, limit?}, checked. `since`
// and `until` are a duration back from now ("24h", "7d", "1h30m"), an ISO time with its offset or
// ms since the epoch; the window is the last 24 hours unless said otherwise.
import { parseDuration } from "../config/duration.ts";
import type { ReplayRequest } from "./control.ts";
import { HttpError } from "./errors.ts";
import { readJson } from "./json.ts";
import { timeMs, timeParam } from "./time-param.ts";

/** Events a replay reads when the body does not say (newest first). */
export const REPLAY_LIMIT = 100_000;
/** The most a body may ask for. */
export const REPLAY_LIMIT_MAX = 1_000_000;

const DEFAULT_SINCE = "24h";

/** A point in time: a duration back from `now`, an ISO time with its offset or ms since the epoch. */
export function replayTime(value: unknown, name: string, now: number): number {
  if (typeof value === "number" && !Number.isNaN(timeMs(value))) return value;
  if (typeof value === "string") {
    const back = parseDuration(value);
    if (back.ok) return now - back.value * 1000;
    const ms = timeParam(value);
    if (!Number.isNaN(ms)) return ms;
  }
  throw new HttpError(
    400,
    "EBADTIME",
    `${name} '${String(value)}' is neither a duration back from now (24h, 7d) nor a time ` +
      "(an ISO 8601 time with its offset, 2026-12-03T10:00:00Z, or ms since the epoch)",
  );
}

export function replayRequest(text: string, setFiles: boolean, now = Date.now()): ReplayRequest {
  const body = readJson(text);
  if (typeof body !== "object" || body === null)
    throw new HttpError(400, "EBADJSON", 'the body must be {"text": POLICY, "since": "24h", ...}');
  const b = body as Record<string, unknown>;
  if (typeof b.text !== "string")
    throw new HttpError(400, "EBADPARAM", "text must be the draft policy's YAML");
  const since = replayTime(b.since ?? DEFAULT_SINCE, "since", now);
  const until = b.until === undefined ? now : replayTime(b.until, "until", now);
  if (since > until) throw new HttpError(400, "EBADTIME", "since is after until");
  const baseline = b.baseline ?? "recorded";
  if (baseline !== "recorded" && baseline !== "running")
    throw new HttpError(400, "EBADPARAM", "baseline must be recorded or running");
  const limit = b.limit ?? REPLAY_LIMIT;
  if (
    typeof limit !== "number" ||
    !Number.isInteger(limit) ||
    limit < 1 ||
    limit > REPLAY_LIMIT_MAX
  )
    throw new HttpError(
      400,
      "EBADPARAM",
      `limit must be a whole number from 1 to ${REPLAY_LIMIT_MAX}`,
    );
  return { text: b.text, since, until, limit, baseline, setFiles };
}

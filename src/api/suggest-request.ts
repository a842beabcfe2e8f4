// What GET /v1/policy/suggest (the running policy) and POST /v1/policy/suggest ({text, name}: a
// policy file's text) ask, checked: since (a duration back from now, an ISO time or ms; default
// 7d), stable (a duration; default 2d), siblings, addresses, promote, clean_days.
import { parseDuration } from "../config/duration.ts";
import type { SuggestApiRequest } from "./control.ts";
import { HttpError } from "./errors.ts";
import { readJson } from "./json.ts";
import { replayTime } from "./replay-request.ts";

const DEFAULT_SINCE = "7d";
/** The longest `stable`: the day roll-ups' keep (400 days); longer holds everything back. */
const MAX_STABLE_SECONDS = 400 * 86_400;

type Params = Record<string, unknown>;

function whole(p: Params, name: string, min: number, max: number): number | undefined {
  const v = p[name];
  if (v === undefined) return undefined;
  const n = typeof v === "string" && /^\d+$/.test(v) ? Number(v) : v;
  if (typeof n !== "number" || !Number.isInteger(n) || n < min || n > max)
    throw new HttpError(400, "EBADPARAM", `${name} must be a whole number from ${min} to ${max}`);
  return n;
}

function checked(p: Params, setFiles: boolean, now: number): SuggestApiRequest {
  const since = replayTime(p.since ?? DEFAULT_SINCE, "since", now);
  if (since > now) throw new HttpError(400, "EBADTIME", "since is in the future");
  // a time the answer can write (an ISO time): nothing is stored from before 1970
  if (since < 0) throw new HttpError(400, "EBADTIME", `since '${String(p.since)}' is before 1970`);
  const out: SuggestApiRequest = { since, now, promote: false, setFiles };
  if (p.stable !== undefined) {
    const stable =
      p.stable === "0" || p.stable === 0
        ? { ok: true as const, value: 0 }
        : typeof p.stable === "string" || typeof p.stable === "number"
          ? parseDuration(p.stable)
          : { ok: false as const };
    if (!stable.ok || stable.value > MAX_STABLE_SECONDS)
      throw new HttpError(
        400,
        "EBADPARAM",
        `stable '${String(p.stable)}' is not a duration (2d, 12h) of at most 400d`,
      );
    out.stableSeconds = stable.value;
  }
  const siblings = whole(p, "siblings", 2, 1000);
  const addresses = whole(p, "addresses", 2, 256);
  const cleanDays = whole(p, "clean_days", 1, 365);
  if (siblings !== undefined) out.siblings = siblings;
  if (addresses !== undefined) out.addresses = addresses;
  if (cleanDays !== undefined) out.cleanDays = cleanDays;
  const promote = p.promote;
  if (promote !== undefined && promote !== "0" && promote !== false) {
    if (promote !== "1" && promote !== "true" && promote !== true)
      throw new HttpError(400, "EBADPARAM", "promote must be true or false");
    out.promote = true;
  }
  return out;
}

/** GET: the running policy. */
export function suggestQuery(params: URLSearchParams, now = Date.now()): SuggestApiRequest {
  return checked(Object.fromEntries(params), false, now);
}

/** POST: a policy file's text (`name` names it in the diff); set files need the policy scope. */
export function suggestBody(text: string, setFiles: boolean, now = Date.now()): SuggestApiRequest {
  const body = readJson(text);
  if (typeof body !== "object" || body === null || Array.isArray(body))
    throw new HttpError(400, "EBADJSON", 'the body must be {"text": POLICY, "since": "7d", ...}');
  const b = body as Params;
  if (typeof b.text !== "string")
    throw new HttpError(400, "EBADPARAM", "text must be the policy file's YAML");
  if (b.name !== undefined && typeof b.name !== "string")
    throw new HttpError(400, "EBADPARAM", "name must be the policy file's name");
  const out = checked(b, setFiles, now);
  out.text = b.text;
  if (typeof b.name === "string") out.fileName = b.name;
  return out;
}

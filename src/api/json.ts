// Request bodies in, JSON out (bigint counters as numbers: they stay far below 2^53 in practice,
// and a string beyond that keeps them exact).
import type { IncomingMessage, ServerResponse } from "node:http";
import { jsonNestsDeeper } from "../config/index.ts";
import { HttpError } from "./errors.ts";

/**
 * Request bodies: most endpoints take a small JSON (`small`); only those a policy text travels
 * to take up to `large`. Bodies being read at once share `inFlightBytes`: past it a request is
 * refused (503), so concurrent large uploads cannot take the daemon's memory.
 */
export const BODY_LIMITS = { small: 64 << 10, large: 16 << 20, inFlightBytes: 64 << 20 };

/** Nesting past this is refused before parsing: no valid request is nearly this deep. */
const MAX_DEPTH = 64;

let inFlight = 0;

/**
 * The request's body, refused past `max` bytes (413): a declared length over it before
 * anything is read. Large bodies (a policy's text) pass BODY_LIMITS.large.
 */
export async function readBody(req: IncomingMessage, max = BODY_LIMITS.small): Promise<string> {
  const tooLarge = () => new HttpError(413, "ETOOLARGE", `request body over ${max} bytes`);
  if (Number(req.headers["content-length"] ?? 0) > max) throw tooLarge();
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of req as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > max) throw tooLarge();
      if (inFlight + chunk.length > BODY_LIMITS.inFlightBytes)
        throw new HttpError(503, "EBUSY", "too many request bodies in flight; try again later");
      inFlight += chunk.length;
      chunks.push(chunk);
    }
    return Buffer.concat(chunks).toString("utf8");
  } finally {
    for (const c of chunks) inFlight -= c.length;
  }
}

export function readJson(text: string): unknown {
  if (jsonNestsDeeper(text, MAX_DEPTH))
    throw new HttpError(400, "EDEPTH", `the request body nests deeper than ${MAX_DEPTH}`);
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new HttpError(400, "EBADJSON", "the request body is not JSON");
  }
}

export function toJson(value: unknown): string {
  try {
    // most values hold no bigint: the plain path is several times faster than a replacer
    return JSON.stringify(value);
  } catch (err) {
    if (!(err instanceof TypeError)) throw err;
  }
  return JSON.stringify(value, (_key, v: unknown) =>
    typeof v === "bigint" ? (v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v.toString()) : v,
  );
}

export function sendJson(res: ServerResponse, status: number, value: unknown): void {
  res.writeHead(status, { "content-type": "application/json" }).end(`${toJson(value)}\n`);
}

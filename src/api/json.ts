// Request bodies in, JSON out (bigint counters as numbers: they stay far below 2^53 in practice,
// and a string beyond that keeps them exact).
import type { IncomingMessage, ServerResponse } from "node:http";
import { HttpError } from "./errors.ts";

const MAX_BODY = 16 << 20;

/**
 * The request's body, refused past `max` bytes: a declared length over it before anything is
 * read. A request not yet authenticated (a console login) passes a small `max`.
 */
export async function readBody(req: IncomingMessage, max = MAX_BODY): Promise<string> {
  const tooLarge = () => new HttpError(413, "ETOOLARGE", `request body over ${max} bytes`);
  if (Number(req.headers["content-length"] ?? 0) > max) throw tooLarge();
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > max) throw tooLarge();
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString("utf8");
}

export function readJson(text: string): unknown {
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

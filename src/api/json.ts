// Request bodies in, JSON out (bigint counters as numbers: they stay far below 2^53 in practice,
// and a string beyond that keeps them exact).
import type { IncomingMessage, ServerResponse } from "node:http";
import { HttpError } from "./errors.ts";

const MAX_BODY = 16 << 20;

export async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY)
      throw new HttpError(413, "ETOOLARGE", `request body over ${MAX_BODY} bytes`);
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

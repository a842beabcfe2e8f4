// The HTTP handler: h2c with prior knowledge (the connection starts with HTTP/2's preface) or
// HTTP/1.x, every request judged on its own.
import type { L7Handler } from "../types.ts";
import { serveH2c } from "./h2c.ts";
import { serveHttp1 } from "./http1.ts";
import { DEFAULT_LIMITS, type HttpLimits } from "./limits.ts";

const H2_PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");

/** The head starts like HTTP/2's preface ("PRI " is no HTTP/1 method a client sends). */
function startsH2(head: Buffer): boolean {
  const n = Math.min(head.length, H2_PREFACE.length);
  return n >= 4 && head.subarray(0, n).equals(H2_PREFACE.subarray(0, n));
}

export function httpHandler(options: Partial<HttpLimits> = {}): L7Handler {
  const limits: HttpLimits = { ...DEFAULT_LIMITS, ...options };
  return (ctx) => (startsH2(ctx.head) ? serveH2c(ctx, limits) : serveHttp1(ctx, limits));
}

// How moat signs a webhook delivery (docs/observability.md, "Webhooks"): HMAC-SHA256 over
// "<timestamp>.<body>", so a receiver can check both who sent it and that it is fresh.
import { createHmac, timingSafeEqual } from "node:crypto";

export const SIGNATURE_HEADER = "x-moat-signature";
export const TIMESTAMP_HEADER = "x-moat-timestamp";
export const DELIVERY_HEADER = "x-moat-delivery";

/** `sha256=<hex>` for a body sent at `timestamp` (unix seconds). */
export function sign(key: Buffer, timestamp: number, body: string): string {
  return `sha256=${createHmac("sha256", key).update(`${timestamp}.${body}`).digest("hex")}`;
}

/** What a receiver does: the signature matches and the timestamp is within `toleranceS`. */
export function verify(
  key: Buffer,
  headers: { signature: string | undefined; timestamp: string | undefined },
  body: string,
  nowS = Math.floor(Date.now() / 1000),
  toleranceS = 300,
): boolean {
  const ts = Number(headers.timestamp);
  if (!headers.signature || !Number.isInteger(ts) || Math.abs(nowS - ts) > toleranceS) return false;
  const want = Buffer.from(sign(key, ts, body));
  const got = Buffer.from(headers.signature);
  return want.length === got.length && timingSafeEqual(want, got);
}

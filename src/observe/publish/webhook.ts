// A webhook: each batch of the event types it wants is POSTed as one JSON document
// {"events":[...]}, signed when a key is set. Failures are retried with exponential backoff,
// bounded in attempts and in time; then the batch is dropped, counted, and write() rejects so
// the pipeline counts the failed batch too. A dead receiver only ever backs up this sink's queue.
import { randomUUID } from "node:crypto";
import type { MoatEvent } from "../../datapath/event.ts";
import type { EventSink } from "../sink.ts";
import type { PublisherFactory } from "./adapter.ts";
import { backoffMs, sleep } from "./backoff.ts";
import { DELIVERY_HEADER, sign, SIGNATURE_HEADER, TIMESTAMP_HEADER } from "./signature.ts";

export interface WebhookOptions {
  url: string;
  /** Event types sent; absent = all. */
  types?: readonly string[];
  /** HMAC-SHA256 key; absent = unsigned. */
  secret?: Buffer;
  /** Tries per batch, the first included (default 5). */
  maxAttempts?: number;
  /** Time per batch, retries included (default 30 s). */
  maxTimeMs?: number;
  /** One request's time limit (default 5 s). */
  requestTimeoutMs?: number;
  /** First retry delay, doubled each time up to 8x (default 500 ms). */
  backoffMs?: number;
  userAgent?: string;
}

export interface WebhookStats {
  /** Events the receiver acknowledged (2xx). */
  delivered: number;
  /** Events given up on. */
  dropped: number;
  /** HTTP requests made, retries included. */
  requests: number;
}

/** Status 408, 429 and 5xx may pass on retry; any other answer (3xx, 4xx) will not. */
const retryable = (status: number) => status === 408 || status === 429 || status >= 500;

const httpWhy = (status: number) =>
  status >= 300 && status < 400 ? `HTTP ${status} (redirects are not followed)` : `HTTP ${status}`;

/** The URL without credentials or query, for names and messages. */
export function displayUrl(url: string): string {
  const u = new URL(url);
  return `${u.protocol}//${u.host}${u.pathname}`;
}

/** `message` with `url` (as given or as parsed) and any other URL's user:password@ taken out. */
function redact(message: string, url: string): string {
  let out = message;
  for (const form of new Set([url, safeHref(url)]))
    if (form) out = out.split(form).join(displayUrl(url));
  return out.replace(/(\w+:\/\/)[^\s/@]*@/g, "$1");
}

function safeHref(url: string): string {
  try {
    return new URL(url).href;
  } catch {
    return "";
  }
}

export class WebhookSink implements EventSink {
  readonly name: string;
  readonly stats: WebhookStats = { delivered: 0, dropped: 0, requests: 0 };
  private readonly o: WebhookOptions;
  private readonly types: ReadonlySet<string> | undefined;
  private readonly closing = new AbortController();

  constructor(o: WebhookOptions) {
    const u = new URL(o.url);
    // fetch() refuses such a URL on every request; refused here, where the policy is refused
    if (u.username || u.password)
      throw new Error(
        `webhook ${displayUrl(o.url)}: a URL with a user name or password is not used; sign deliveries with secret_file`,
      );
    this.o = o;
    this.name = `webhook ${displayUrl(o.url)}`;
    this.types = o.types ? new Set(o.types) : undefined;
  }

  async write(batch: readonly MoatEvent[]): Promise<void> {
    const events = this.types ? batch.filter((e) => this.types?.has(e.type)) : batch;
    if (events.length === 0) return;
    const body = JSON.stringify({ events });
    const delivery = randomUUID();
    const maxAttempts = this.o.maxAttempts ?? 5;
    const deadline = Date.now() + (this.o.maxTimeMs ?? 30_000);
    const first = this.o.backoffMs ?? 500;
    let why = "";
    for (let attempt = 1; ; attempt++) {
      const left = deadline - Date.now();
      const status = await this.post(
        body,
        delivery,
        Math.min(left, this.o.requestTimeoutMs ?? 5000),
      );
      if (typeof status === "number" && status >= 200 && status < 300) {
        this.stats.delivered += events.length;
        return;
      }
      // keep the last real failure: an abort by close() is not the receiver's
      if (!this.closing.signal.aborted)
        why = typeof status === "number" ? httpWhy(status) : redact(status.message, this.o.url);
      if (typeof status === "number" && !retryable(status)) break;
      if (attempt >= maxAttempts || this.closing.signal.aborted) break;
      const wait = backoffMs(attempt, first, first * 8);
      if (Date.now() + wait >= deadline) break;
      if (!(await sleep(wait, this.closing.signal))) break;
    }
    if (this.closing.signal.aborted) why = why ? `closed (last: ${why})` : "closed";
    this.stats.dropped += events.length;
    throw new Error(`${this.name}: dropped ${events.length} events: ${why}`);
  }

  /** The response status, or the error that prevented one. */
  private async post(body: string, delivery: string, timeoutMs: number): Promise<number | Error> {
    const timestamp = Math.floor(Date.now() / 1000);
    const headers: Record<string, string> = {
      "content-type": "application/json",
      "user-agent": this.o.userAgent ?? "moat",
      [DELIVERY_HEADER]: delivery,
      [TIMESTAMP_HEADER]: String(timestamp),
    };
    if (this.o.secret) headers[SIGNATURE_HEADER] = sign(this.o.secret, timestamp, body);
    this.stats.requests++;
    try {
      const res = await fetch(this.o.url, {
        method: "POST",
        headers,
        body,
        // a 3xx is an answer like any other (final, not followed): "error" would make it a
        // network error, retried
        redirect: "manual",
        signal: AbortSignal.any([AbortSignal.timeout(Math.max(1, timeoutMs)), this.closing.signal]),
      });
      await res.body?.cancel();
      return res.status;
    } catch (e) {
      const cause = (e as { cause?: unknown }).cause;
      return cause instanceof Error ? cause : (e as Error);
    }
  }

  /** Stops retrying: a batch in flight is dropped (and counted) at once. */
  close(): void {
    this.closing.abort();
  }
}

export const webhookPublisher: PublisherFactory<WebhookOptions> = (o) => new WebhookSink(o);

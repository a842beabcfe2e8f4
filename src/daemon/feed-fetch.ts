// URL feeds (`sets: { NAME: { url: ... } }`): the daemon fetches each on its interval, with
// If-None-Match / If-Modified-Since (a 304 costs nothing) and a size limit, and keeps the body in
// the set store (NAME.feed) where the policy loader reads it. A new body compiles the running
// policy again (the datapath swaps its tables atomically); the body stored, served again (by a
// server that sends no validators), compiles nothing; a failed fetch keeps the last good content
// and says why (the daemon's output, `moat set list`), is counted (`moat status`, /metrics), and
// the first of a run of them, and the good fetch that ends it, are notices.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { FeedStatusView } from "../api/index.ts";
import type { FeedFetches, Notice } from "../observe/index.ts";
import { checkTrustedPath, MAX_FILE_BYTES, writeTrustedFileAtomic } from "../host/index.ts";
import { readLimited } from "./limited-body.ts";
import { hostScope, redirectRefusal, type Scope } from "./redirect-scope.ts";
import {
  feedAddresses,
  type FeedFormat,
  type PolicyModel,
  type SetOrigin,
} from "../config/index.ts";

export interface FeedOptions {
  /** The set store (NAME.feed and NAME.feed-meta files). */
  dir: string;
  model: () => PolicyModel;
  refresh: (reason: string) => Promise<void>;
  log: (line: string) => void;
  /** Sends a notice through every sink: a feed started failing, or fetched again. */
  notice?: (notice: Notice) => void;
  /** How long a fetch may take (default 60 s). */
  timeoutMs?: number;
}

export interface Feeds {
  /** The running policy changed: feeds added, removed or changed start or stop. */
  applied(): void;
  status(name: string): FeedStatusView | undefined;
  /** Every running URL feed's failed fetches (`moat status`, /metrics). */
  stats(): FeedFetches[];
  close(): void;
}

interface Meta {
  url: string;
  etag?: string;
  lastModified?: string;
  lastChange?: string;
}

interface Running {
  url: string;
  format: FeedFormat;
  column: number;
  intervalMs: number;
  maxBytes: number;
  timer: NodeJS.Timeout | undefined;
  /** STIX: when the earliest `valid_until` of the indicators in force passes. */
  expiry: NodeJS.Timeout | undefined;
  /** The stored body could not be put in force: the same body fetched again compiles again. */
  notInForce: boolean;
  /** Ends a fetch under way when the feed stops (the daemon exits, the set leaves the policy). */
  abort: AbortController;
  status: FeedStatusView;
}

/** The longest a Node timer waits; a later time is waited for in steps. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * The largest body taken: max_bytes, never more than the loader reads of the stored file (a
 * body it could not read would be stored, and the set read as empty).
 */
function storableBytes(maxBytes: number | undefined): number {
  return Math.min(maxBytes ?? MAX_FILE_BYTES.set, MAX_FILE_BYTES.set);
}

/** `meta` with the answer's ETag and Last-Modified (those it has; the others dropped). */
function withValidators(meta: Meta, res: Response): Meta {
  delete meta.etag;
  delete meta.lastModified;
  const etag = res.headers.get("etag");
  const lastModified = res.headers.get("last-modified");
  if (etag) meta.etag = etag;
  if (lastModified) meta.lastModified = lastModified;
  return meta;
}

/** Redirects followed at most: a loop is a failed fetch that says so. */
const MAX_REDIRECTS = 5;
const REDIRECTS = new Set([301, 302, 303, 307, 308]);

/**
 * `url` fetched, its redirects followed one by one: to http or https only, from an https feed to
 * https only (a hop over http would let anyone on the path write the list), and never to an
 * address more local than the feed's own (redirect-scope.ts). Errors name the target's scheme or
 * origin, never more of what the server wrote.
 */
async function fetchFollowing(url: string, init: RequestInit): Promise<Response> {
  const secure = new URL(url).protocol === "https:";
  let feedScope: Scope | undefined;
  let at = url;
  for (let hops = 0; ; hops++) {
    const res = await fetch(at, { ...init, redirect: "manual" });
    const location = res.headers.get("location");
    if (!REDIRECTS.has(res.status) || location === null) return res;
    await res.body?.cancel();
    if (hops === MAX_REDIRECTS) throw new Error(`more than ${MAX_REDIRECTS} redirects`);
    const next = new URL(location, at);
    if (next.protocol !== "http:" && next.protocol !== "https:")
      throw new Error(`a redirect to ${next.protocol} is refused (http and https only)`);
    if (secure && next.protocol !== "https:")
      throw new Error(`a redirect from https to ${next.origin} is refused`);
    // looked up once a redirect is met: most fetches have none
    feedScope ??= await hostScope(new URL(url));
    const refused = await redirectRefusal(feedScope, next);
    if (refused) throw new Error(refused);
    at = next.href;
  }
}

/**
 * Whether a body ended only by the server's close (no Content-Length, no chunks: a cut connection
 * looks the same) stops in the middle of a line: a list cut there would lose its tail, and its
 * last line could read as another address (203.0.113.1 of 203.0.113.12). A cut at a line's end
 * cannot be told from the list's end. A STIX body cut short is no JSON, refused as it is.
 */
function cutMidLine(res: Response, body: Buffer, format: FeedFormat): boolean {
  if (format === "stix" || res.headers.has("content-length")) return false;
  if (res.headers.has("transfer-encoding")) return false;
  return body[body.length - 1] !== 0x0a;
}

/** Why a fetch failed: fetch's own "fetch failed" with the reason under it (ECONNREFUSED, ...). */
function failure(err: unknown): string {
  const e = err as Error;
  const cause = e.cause instanceof Error ? e.cause : undefined;
  const under = cause?.message || (cause as NodeJS.ErrnoException | undefined)?.code;
  return under && under !== e.message ? `${e.message}: ${under}` : e.message;
}

export function startFeeds(options: FeedOptions): Feeds {
  const { dir, model, log } = options;
  const running = new Map<string, Running>();
  let closed = false;

  const metaFile = (name: string) => join(dir, `${name}.feed-meta`);
  function readMeta(name: string, url: string): Meta {
    try {
      const meta = JSON.parse(readFileSync(metaFile(name), "utf8")) as Meta;
      return meta.url === url ? meta : { url };
    } catch {
      return { url };
    }
  }
  function writeAtomic(path: string, text: string | Buffer): void {
    // the store is made (0700) when first written: a policy with no URL feed never needs it
    writeTrustedFileAtomic(path, text, { what: "feed file" });
  }

  async function fetchOnce(name: string, feed: Running): Promise<void> {
    const meta = readMeta(name, feed.url);
    // validators stand for the stored list: with none the loader can read, a 304 would leave
    // the set empty for as long as the server answers it
    const headers: Record<string, string> = {};
    if (storedReadable(name, meta)) {
      if (meta.etag) headers["if-none-match"] = meta.etag;
      if (meta.lastModified) headers["if-modified-since"] = meta.lastModified;
    }
    feed.status.lastFetch = new Date().toISOString();
    try {
      const res = await fetchFollowing(feed.url, {
        headers,
        signal: AbortSignal.any([
          feed.abort.signal,
          AbortSignal.timeout(options.timeoutMs ?? 60_000),
        ]),
      });
      if (res.status === 304) {
        await res.body?.cancel();
        // nothing was named to be unmodified: the set would stay empty with "not modified" shown
        if (Object.keys(headers).length === 0)
          throw new Error("HTTP 304 to a fetch that named no stored list");
        feed.status.lastResult = "304 not modified";
        fetched(name, feed);
        return;
      }
      if (res.status !== 200) {
        await res.body?.cancel();
        throw new Error(`HTTP ${res.status}`);
      }
      const body = await readLimited(res, feed.maxBytes, `max_bytes ${feed.maxBytes}`);
      // a server that answers nothing (a broken export, a connection closed before the body)
      // would empty the set and unblock every address it held
      if (body.toString("utf8").trim() === "")
        throw new Error("the body is empty: a list with no entry says so in a comment");
      if (cutMidLine(res, body, feed.format))
        throw new Error(
          "the body ended with the connection, in the middle of a line: it may be cut short",
        );
      // the feed was stopped or its URL changed meanwhile: this body is no longer wanted
      if (closed || running.get(name) !== feed) return;
      if (!feed.notInForce && storedBody(name, meta)?.equals(body)) {
        // what is in force already: compiling the policy again would change nothing
        const validators = withValidators({ ...meta }, res);
        if (validators.etag !== meta.etag || validators.lastModified !== meta.lastModified)
          writeAtomic(metaFile(name), JSON.stringify(validators));
        feed.status.lastResult = "200 unchanged";
        fetched(name, feed);
        return;
      }
      // an error page served as 200 would empty the set: a body of which nothing could be taken,
      // and something was refused, is not the feed (an empty feed refuses nothing)
      const taken = feedAddresses(body.toString("utf8"), feed.format, feed.column);
      if (taken.entries.length === 0 && taken.refused.size > 0)
        throw new Error(
          `no entry of the body could be taken: ${[...taken.refused].map(([why, n]) => `${n} ${why}`).join(", ")}`,
        );
      const next = withValidators({ url: feed.url, lastChange: new Date().toISOString() }, res);
      // stored as it came: the loader's size limit reads the body's own bytes
      writeAtomic(join(dir, `${name}.feed`), body);
      writeAtomic(metaFile(name), JSON.stringify(next));
      feed.status.lastResult = "200";
      feed.status.lastChange = next.lastChange;
      fetched(name, feed);
      watchValidUntil(name, feed, taken.until);
    } catch (err) {
      // stopped: the fetch was ended on purpose, nothing failed
      if (feed.abort.signal.aborted) return;
      const why = failure(err);
      feed.status.lastResult = `failed: ${why}`;
      log(`feed ${name}: fetching ${feed.url} failed (${why}); the last good content stays`);
      failed(name, feed, why);
      return;
    }
    feed.notInForce = true;
    try {
      await options.refresh(`feed ${name} updated`);
      feed.notInForce = false;
    } catch (err) {
      // stored all the same: the next policy that compiles (a fixed set file) takes it
      const why = (err as Error).message;
      feed.status.lastResult = `200, not in force: ${why}`;
      log(`feed ${name}: the new list is stored but not in force: ${why}`);
    }
  }

  /** A failed fetch counted; the first since a good one (or the start) is a notice. */
  function failed(name: string, feed: Running, why: string): void {
    const at = new Date().toISOString();
    const first = feed.status.failingSince === undefined;
    feed.status.failures = (feed.status.failures ?? 0) + 1;
    feed.status.failingSince ??= at;
    feed.status.lastError = why;
    feed.status.lastErrorAt = at;
    if (first)
      options.notice?.({
        time: at,
        type: "feed_failing",
        feed: name,
        error: why,
        failures: feed.status.failures,
      });
  }

  /** A good fetch (200 or 304): it ends a run of failed ones, and says so once. */
  function fetched(name: string, feed: Running): void {
    if (feed.status.failingSince === undefined) return;
    delete feed.status.failingSince;
    options.notice?.({
      time: new Date().toISOString(),
      type: "feed_recovered",
      feed: name,
      failures: feed.status.failures ?? 0,
    });
  }

  /** Whether a body is stored for this URL that the loader can open (checked, not read). */
  function storedReadable(name: string, meta: Meta): boolean {
    if (meta.lastChange === undefined) return false;
    try {
      checkTrustedPath(join(dir, `${name}.feed`), {
        what: "stored feed",
        write: false,
        maxBytes: MAX_FILE_BYTES.set,
      });
      return true;
    } catch {
      return false;
    }
  }

  /** The body stored for this URL (none stored, or unreadable: undefined). */
  function storedBody(name: string, meta: Meta): Buffer | undefined {
    if (meta.lastChange === undefined) return undefined;
    try {
      return readFileSync(join(dir, `${name}.feed`));
    } catch {
      return undefined;
    }
  }

  /** The stored body's earliest `valid_until` in force (STIX; none stored for this URL: none). */
  function storedUntil(name: string, feed: Running): number | undefined {
    if (feed.format !== "stix" || readMeta(name, feed.url).lastChange === undefined) return;
    try {
      return feedAddresses(readFileSync(join(dir, `${name}.feed`), "utf8"), "stix").until;
    } catch {
      return undefined;
    }
  }

  /**
   * Compiles the policy again when `until` passes: the loader then leaves out the indicators
   * past their `valid_until`, which no new body (a 304) would. Then waits for the next one.
   */
  function watchValidUntil(name: string, feed: Running, until: number | undefined): void {
    clearTimeout(feed.expiry);
    feed.expiry = undefined;
    if (until === undefined) return;
    const wait = Math.min(Math.max(until - Date.now() + 1, 0), MAX_TIMER_MS);
    feed.expiry = setTimeout(() => void validUntilPassed(name, feed, until), wait);
    feed.expiry.unref();
  }

  async function validUntilPassed(name: string, feed: Running, until: number): Promise<void> {
    if (closed || running.get(name) !== feed) return;
    // a time past the longest timer is waited for in steps
    if (Date.now() <= until) {
      watchValidUntil(name, feed, until);
      return;
    }
    try {
      await options.refresh(`feed ${name}: an indicator's validity began or ended`);
    } catch (err) {
      log(
        `feed ${name}: an indicator's validity began or ended, not in force: ${(err as Error).message}`,
      );
    }
    if (!closed && running.get(name) === feed) watchValidUntil(name, feed, storedUntil(name, feed));
  }

  function start(name: string, origin: SetOrigin): void {
    const url = origin.url ?? "";
    const meta = readMeta(name, url);
    const feed: Running = {
      url,
      format: origin.format ?? "plain",
      column: origin.column ?? 1,
      intervalMs: (origin.intervalSeconds ?? 3600) * 1000,
      maxBytes: storableBytes(origin.maxBytes),
      timer: undefined,
      expiry: undefined,
      notInForce: false,
      abort: new AbortController(),
      status: { url, failures: 0, ...(meta.lastChange ? { lastChange: meta.lastChange } : {}) },
    };
    running.set(name, feed);
    watchValidUntil(name, feed, storedUntil(name, feed));
    const loop = async (): Promise<void> => {
      await fetchOnce(name, feed);
      if (closed || running.get(name) !== feed) return;
      feed.timer = setTimeout(() => void loop(), feed.intervalMs);
      feed.timer.unref();
    };
    void loop();
  }

  function stop(feed: Running): void {
    clearTimeout(feed.timer);
    clearTimeout(feed.expiry);
    feed.abort.abort();
  }

  function applied(): void {
    const wanted = new Map<string, SetOrigin>();
    for (const set of model().sets.values())
      if (set.origin?.kind === "feed" && set.origin.url) wanted.set(set.name, set.origin);
    for (const [name, feed] of running) {
      const w = wanted.get(name);
      if (
        w?.url === feed.url &&
        (w.intervalSeconds ?? 3600) * 1000 === feed.intervalMs &&
        storableBytes(w.maxBytes) === feed.maxBytes &&
        (w.format ?? "plain") === feed.format &&
        (w.column ?? 1) === feed.column
      )
        continue;
      stop(feed);
      running.delete(name);
    }
    for (const [name, origin] of wanted) if (!running.has(name)) start(name, origin);
  }

  applied();
  return {
    applied,
    status: (name) => {
      const feed = running.get(name);
      return feed ? { ...feed.status } : undefined;
    },
    stats: () =>
      [...running].map(([name, { status }]) => ({
        name,
        failures: status.failures ?? 0,
        ...(status.failingSince !== undefined ? { failingSince: status.failingSince } : {}),
        ...(status.lastError !== undefined ? { lastError: status.lastError } : {}),
        ...(status.lastErrorAt !== undefined ? { lastErrorAt: status.lastErrorAt } : {}),
      })),
    close() {
      closed = true;
      for (const feed of running.values()) stop(feed);
      running.clear();
    },
  };
}

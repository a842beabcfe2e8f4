// A CrowdSec bouncer: a dynamic set with `crowdsec: { url, key_file }` is filled with the ban
// decisions of CrowdSec's local API. The first poll asks for every active decision
// (`/v1/decisions/stream?startup=true`, the set's content replaced), the next ones for what
// changed since; each decision's duration is its entry's expiry. Only bans on an Ip or a Range
// are taken (captcha and other remedies, country or AS scopes are counted as skipped). While
// decisions are dropped for lack of room (max_entries), every poll asks for all of them: the
// stream would not send them again. A failed poll (an answer that is not a decision stream
// too) keeps the entries and is logged when polls start failing, when the reason changes, and
// when they work again; the next poll asks for every decision again.
import type { DynamicEntry, PolicyModel, SetOrigin } from "../config/index.ts";
import { jsonNestsDeeper, MAX_ENTRY_TIMEOUT_SECONDS, parseAddressEntry } from "../config/index.ts";
import { readSecretFile } from "../observe/index.ts";
import { storedForm, type DynamicSets } from "./dynamic-sets.ts";
import { readLimited } from "./limited-body.ts";

export interface CrowdsecOptions {
  model: () => PolicyModel;
  sets: Pick<DynamicSets, "bulk">;
  log: (line: string) => void;
  now?: () => number;
  /** The largest reply taken from the local API (default 64 MiB). */
  maxReplyBytes?: number;
}

export interface Crowdsec {
  applied(): void;
  close(): void;
}

interface Decision {
  value?: unknown;
  scope?: unknown;
  type?: unknown;
  duration?: unknown;
}

const UNIT_MS: Record<string, number> = {
  h: 3_600_000,
  m: 60_000,
  s: 1000,
  ms: 1,
  us: 1e-3,
  µs: 1e-3,
  ns: 1e-6,
};

/** A Go duration ("3h59m58.123s", "-2s") in ms; null when it is not one. */
export function goDurationMs(text: string): number | null {
  const m = /^(-?)((?:\d+(?:\.\d+)?(?:h|ms|m|s|us|µs|ns))+)$/.exec(text.trim());
  if (!m?.[2]) return null;
  let ms = 0;
  for (const [, n, unit] of m[2].matchAll(/(\d+(?:\.\d+)?)(h|ms|m|s|us|µs|ns)/g))
    ms += Number(n) * (UNIT_MS[unit ?? "s"] ?? 0);
  return m[1] ? -ms : ms;
}

const LONGEST_MS = MAX_ENTRY_TIMEOUT_SECONDS * 1000;

/** Nesting past this in a reply is refused before parsing (a decision stream nests 3 deep). */
const MAX_DEPTH = 8;

/** What a JSON value is, in a failed poll's words. */
function kindOf(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  return typeof value === "object" ? "an object" : `a ${typeof value}`;
}

/**
 * The decisions of a poll's answer; throws saying why when it is not a decision stream. CrowdSec
 * always sends `new` (null when there is none): an answer without it (`{}`, an error object
 * served with 200) read as "no decisions" would empty the set at a startup poll.
 */
function decisionStream(body: unknown): { new: unknown[]; deleted: unknown[] } {
  const why = (what: string) => new Error(`the reply is not a decision stream: ${what}`);
  if (typeof body !== "object" || body === null || Array.isArray(body))
    throw why(`it is ${kindOf(body)}, not an object`);
  const b = body as { new?: unknown; deleted?: unknown };
  if (b.new === undefined) throw why("it has no 'new' list");
  const list = (key: "new" | "deleted"): unknown[] => {
    const value = b[key];
    if (value === undefined || value === null) return [];
    if (!Array.isArray(value)) throw why(`its '${key}' is ${kindOf(value)}, not a list`);
    return value;
  };
  return { new: list("new"), deleted: list("deleted") };
}

/**
 * What a poll's answer changes in the set: entries to add, entries to remove, skipped. Throws
 * when the answer is not a decision stream.
 */
export function decisionChanges(
  body: unknown,
  now: number,
): { adds: DynamicEntry[]; dels: string[]; skipped: number } {
  const b = decisionStream(body);
  const adds: DynamicEntry[] = [];
  const dels: string[] = [];
  let skipped = 0;
  const taken = (d: Decision): string | null => {
    // the answer is untrusted JSON: a decision that is not an object is skipped, not a failed poll
    if (typeof d !== "object" || d === null) return null;
    const scope = typeof d.scope === "string" ? d.scope.toLowerCase() : "";
    if (d.type !== "ban" || (scope !== "ip" && scope !== "range") || typeof d.value !== "string")
      return null;
    // trimmed as `moat set add` trims: the entry stored, and a delete's match, is the address
    // read, never a line break around it (the store file is one entry a line)
    const value = d.value.trim();
    const parsed = parseAddressEntry(value);
    if (!parsed.ok || parsed.value.negate || parsed.value.target.kind !== "interval") return null;
    // stored as `moat set add` stores it (an IPv4-mapped address as the IPv4 one it carries, a
    // range with host bits as its network): as written it would never match, and a deletion
    // finds the entry its ban stored
    return storedForm(value, parsed.value.target).entry;
  };
  for (const d of b.new as Decision[]) {
    const value = taken(d);
    const ms = value !== null && typeof d.duration === "string" ? goDurationMs(d.duration) : null;
    if (value === null || ms === null) skipped++;
    // a ban longer than an entry's longest timeout is kept that long: an expiry stays a date
    else if (ms > 0)
      adds.push({ entry: value, expires: now + Math.ceil(Math.min(ms, LONGEST_MS)) });
  }
  for (const d of b.deleted as Decision[]) {
    const value = taken(d);
    if (value !== null) dels.push(value);
  }
  return { adds, dels, skipped };
}

/**
 * Why a poll failed: the error's message, and what the connection met when fetch names only
 * itself ("fetch failed: connect ECONNREFUSED 127.0.0.1:8080").
 */
function failureText(err: unknown): string {
  const message = (err as Error).message;
  const cause = (err as { cause?: unknown }).cause as { code?: unknown; message?: unknown };
  if (typeof cause !== "object" || cause === null) return message;
  const code = typeof cause.code === "string" ? cause.code : "";
  const detail = typeof cause.message === "string" ? cause.message : "";
  const said = detail.includes(code) ? detail : [code, detail].filter(Boolean).join(": ");
  return said ? `${message}: ${said}` : message;
}

interface Poller {
  config: NonNullable<SetOrigin["crowdsec"]>;
  timer: NodeJS.Timeout | undefined;
  startup: boolean;
  /** The last line a poll logged; a full list asked again while the set is full logs a new one. */
  lastLine?: string;
  /** Since the last good poll: why the polls fail (logged when it changes) and how many did. */
  failing?: { why: string; polls: number };
  stopped: boolean;
  /** Ends a poll under way when the bouncer stops (the daemon exits, the set leaves the policy). */
  abort: AbortController;
}

export function startCrowdsec(options: CrowdsecOptions): Crowdsec {
  const { model, sets, log } = options;
  const now = options.now ?? Date.now;
  const maxReply = options.maxReplyBytes ?? 64 * 2 ** 20;
  const pollers = new Map<string, Poller>();

  async function poll(name: string, p: Poller): Promise<void> {
    try {
      // the key opens CrowdSec's decisions: a file others can read or change is refused
      const key = readSecretFile(p.config.keyFile).toString("utf8");
      const res = await fetch(`${p.config.url}/v1/decisions/stream?startup=${p.startup}`, {
        headers: { "x-api-key": key, "user-agent": "moat-bouncer" },
        signal: AbortSignal.any([p.abort.signal, AbortSignal.timeout(30_000)]),
      });
      if (res.status !== 200) {
        await res.body?.cancel();
        throw new Error(`HTTP ${res.status}`);
      }
      const reply = await readLimited(res, maxReply);
      const text = reply.toString("utf8");
      // a decision stream nests 3 deep: a deeper reply would hold the thread in JSON.parse
      if (jsonNestsDeeper(text, MAX_DEPTH))
        throw new Error(
          `the reply nests deeper than ${MAX_DEPTH} levels, unlike a decision stream`,
        );
      const { adds, dels, skipped } = decisionChanges(JSON.parse(text), now());
      // stopped meanwhile (the set left the policy, or its bouncer changed): not this poll's set
      if (p.stopped) return;
      const replace = p.startup;
      const r = await sets.bulk(
        name,
        { adds, dels, replace },
        `crowdsec decisions for set ${name}`,
      );
      if (p.failing) {
        const n = p.failing.polls;
        log(
          `crowdsec: set ${name}: polling ${p.config.url} works again (${n} poll${n === 1 ? "" : "s"} failed)`,
        );
        p.failing = undefined;
      }
      const line =
        `crowdsec: set ${name}: +${adds.length} -${dels.length} decisions, ${r.entries} entries` +
        (skipped ? `, ${skipped} skipped (not a ban on an Ip or a Range)` : "") +
        (r.dropped ? `, ${r.dropped} dropped (max_entries)` : "");
      // a full list asked again while the set is full says only what differs from the last one
      if (replace ? line !== p.lastLine : adds.length > 0 || dels.length > 0) {
        log(line);
        p.lastLine = line;
      }
      // the stream sends a dropped decision once: while any was dropped for lack of room, the
      // next poll asks for every decision, so those come in when room frees
      p.startup = r.dropped > 0;
    } catch (err) {
      // stopped: the poll was ended on purpose, nothing failed
      if (p.stopped) return;
      p.startup = true; // after a failure, every active decision again
      p.lastLine = undefined;
      // said when polls start failing and when why changes, not at every interval
      const why = failureText(err);
      const polls = (p.failing?.polls ?? 0) + 1;
      if (why !== p.failing?.why)
        log(`crowdsec: set ${name}: polling ${p.config.url} failed (${why}); the entries stay`);
      p.failing = { why, polls };
    }
  }

  function start(name: string, config: Poller["config"]): void {
    const p: Poller = {
      config,
      timer: undefined,
      startup: true,
      stopped: false,
      abort: new AbortController(),
    };
    pollers.set(name, p);
    const loop = async (): Promise<void> => {
      await poll(name, p);
      if (p.stopped) return;
      p.timer = setTimeout(() => void loop(), config.intervalSeconds * 1000);
      p.timer.unref();
    };
    void loop();
  }

  function stop(p: Poller): void {
    p.stopped = true;
    clearTimeout(p.timer);
    p.abort.abort();
  }

  function applied(): void {
    const wanted = new Map<string, Poller["config"]>();
    for (const set of model().sets.values())
      if (set.origin?.crowdsec) wanted.set(set.name, set.origin.crowdsec);
    for (const [name, p] of pollers)
      if (JSON.stringify(wanted.get(name)) !== JSON.stringify(p.config)) {
        stop(p);
        pollers.delete(name);
      }
    for (const [name, config] of wanted) if (!pollers.has(name)) start(name, config);
  }

  return {
    applied,
    close() {
      for (const p of pollers.values()) stop(p);
      pollers.clear();
    },
  };
}

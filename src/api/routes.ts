// The API's endpoints: method + path -> handler. Handlers throw HttpError for expected failures.
import type { IncomingMessage, ServerResponse } from "node:http";
import { isIP } from "node:net";
import { FilterError, parseFilter } from "../observe/filter.ts";
import type { HistoryQuery } from "../observe/history/query.ts";
import { HistoryUnavailableError } from "../observe/history/remote.ts";
import type { RuleStats } from "../observe/sink.ts";
import type { StatsQuery } from "../observe/history/rollup.ts";
import { requestedScopes } from "./console-routes.ts";
import type {
  ApiControl,
  DecisionBody,
  DecisionOutcome,
  JobContext,
  ReviewAnswer,
  SshLoginQuery,
  SuggestApiRequest,
} from "./control.ts";
import { HttpError } from "./errors.ts";
import { BODY_LIMITS, readBody, readJson, sendJson } from "./json.ts";
import { replayRequest } from "./replay-request.ts";
import { timeParam } from "./time-param.ts";
import { suggestBody, suggestQuery } from "./suggest-request.ts";
import { prometheusText, type ApiCounters } from "./metrics.ts";
import { OPENAPI } from "./openapi.ts";
import type { FlowHub } from "./flow-stream.ts";
import type { Principal } from "./principal.ts";
import type { Scope } from "./scopes.ts";
import { subscribe } from "./sse.ts";
import type { SubscriberHub } from "./subscribers.ts";

export interface RequestContext {
  req: IncomingMessage;
  res: ServerResponse;
  url: URL;
  /** Who is asking, as the audit log names them ("token NAME", "unix uid 0 pid 42"). */
  who: string;
  control: ApiControl;
  counters: ApiCounters;
  subscribers: SubscriberHub;
  principal: Principal;
  flows: FlowHub;
  /** A one-time console login URL for these scopes, on this listener or the loopback one. */
  mintConsole(scopes: ReadonlySet<Scope>): Promise<{ url: string; expiresAt: number }>;
}

type Handler = (ctx: RequestContext) => Promise<void> | void;

export interface Route {
  /** The scope a caller needs; null: anyone, no token (nothing secret in it). */
  scope: Scope | null;
  /** It changes what the daemon enforces: a refusal is audited too. */
  change?: true;
  handle: Handler;
}

export const ROUTES: Record<string, Partial<Record<string, Route>>> = {
  "/openapi.json": { GET: { scope: null, handle: ({ res }) => sendJson(res, 200, OPENAPI) } },
  "/v1/status": {
    GET: { scope: "read", handle: ({ res, control }) => sendJson(res, 200, control.snapshot()) },
  },
  "/v1/rules": {
    GET: {
      scope: "read",
      handle: ({ res, url, control }) => {
        const top = topOf(url.searchParams);
        const s = control.snapshot();
        const rules = top === undefined ? s.rules : busiest(s.rules, top);
        sendJson(res, 200, { generation: s.generation, total: s.rules.length, rules });
      },
    },
  },
  "/v1/policy": {
    GET: { scope: "read", handle: ({ res, control }) => sendJson(res, 200, control.policy()) },
    PUT: {
      scope: "policy",
      change: true,
      handle: async ({ req, res, url, control, who }) => {
        const confirmMs = confirmOf(url.searchParams);
        const text = await readBody(req, BODY_LIMITS.large);
        const outcome = await control.apply(text, who, confirmMs ? { confirmMs } : {});
        if (!outcome.ok)
          throw new HttpError(
            422,
            "EPOLICY",
            `policy refused; generation ${outcome.generation} keeps running`,
            outcome.errors,
          );
        sendJson(res, 200, outcome);
      },
    },
  },
  "/v1/policy/confirm": {
    POST: {
      scope: "policy",
      change: true,
      handle: async ({ res, control, who }) => {
        const outcome = await control.confirm(who);
        if (!outcome.ok)
          throw new HttpError(409, "ENOTRIAL", outcome.errors[0] ?? "no policy is on trial");
        sendJson(res, 200, outcome);
      },
    },
  },
  "/v1/policy/validate": {
    POST: {
      scope: "policy",
      handle: async ({ req, res, control }) =>
        sendJson(res, 200, await control.validate(await readBody(req, BODY_LIMITS.large))),
    },
  },
  "/v1/policy/replay": {
    POST: {
      // reading what happened, as GET /v1/events; set files only with the policy scope
      scope: "events",
      handle: async ({ req, res, control, principal }) => {
        const request = replayRequest(
          await readBody(req, BODY_LIMITS.large),
          principal.scopes.has("policy"),
        );
        const outcome = await control.replay(request, jobContext(res, principal));
        if (!outcome)
          throw new HttpError(404, "ENOHISTORY", "the event history is off in this daemon");
        if (!outcome.ok)
          throw new HttpError(422, "EPOLICY", "the draft policy is refused", outcome.errors);
        const { report, warnings, policyChanges } = outcome;
        sendJson(res, 200, { ...report, warnings, policyChanges });
      },
    },
  },
  "/v1/policy/suggest": {
    // reading what happened, as GET /v1/stats; a posted text's set files only with the policy scope
    GET: {
      scope: "events",
      handle: async ({ res, url, control, principal }) =>
        suggested(res, control, suggestQuery(url.searchParams), principal),
    },
    POST: {
      scope: "events",
      handle: async ({ req, res, control, principal }) =>
        suggested(
          res,
          control,
          suggestBody(await readBody(req, BODY_LIMITS.large), principal.scopes.has("policy")),
          principal,
        ),
    },
  },
  "/v1/mode": {
    PUT: {
      scope: "mode",
      change: true,
      handle: async ({ req, res, control, who }) => {
        const body = readJson(await readBody(req));
        const mode = (body as { mode?: unknown } | null)?.mode;
        if (mode !== "detect" && mode !== "prevent" && mode !== "policy")
          throw new HttpError(
            400,
            "EBADMODE",
            'body must be {"mode": "detect" | "prevent" | "policy"}',
          );
        const outcome = await control.setMode(mode, who);
        if (!outcome.ok) throw new HttpError(422, "EPOLICY", "mode switch refused", outcome.errors);
        sendJson(res, 200, { ...outcome, mode });
      },
    },
  },
  "/v1/decisions": {
    GET: {
      scope: "read",
      handle: ({ res, control }) => sendJson(res, 200, decisionsOf(control).decisions()),
    },
    POST: {
      // a local decision changes what is enforced, as a policy does
      scope: "policy",
      change: true,
      handle: async ({ req, res, control, who }) => {
        const body = readJson(await readBody(req));
        if (typeof body !== "object" || body === null || Array.isArray(body))
          throw new HttpError(400, "EBADDECISION", "body must be a decision object");
        const outcome = await decisionsOf(control).addDecision(body as DecisionBody, who);
        sendDecision(res, outcome, "decision refused");
      },
    },
    DELETE: {
      scope: "policy",
      change: true,
      handle: async ({ res, url, control, who }) => {
        const id = url.searchParams.get("id") ?? "";
        const outcome = await decisionsOf(control).removeDecision(id, who);
        if (!outcome.ok && outcome.errors[0]?.startsWith("no decision"))
          throw new HttpError(404, "ENODECISION", outcome.errors[0]);
        sendDecision(res, outcome, "decision not removed");
      },
    },
  },
  "/v1/review": {
    GET: {
      scope: "events",
      handle: ({ res, control }) => sendJson(res, 200, decisionsOf(control).review()),
    },
  },
  "/v1/review/decide": {
    POST: {
      scope: "policy",
      change: true,
      handle: async ({ req, res, control, who }) => {
        const answer = reviewAnswer(readJson(await readBody(req)));
        const outcome = await decisionsOf(control).answerReview(answer, who);
        if (!outcome.ok && outcome.errors[0]?.startsWith("no review queue entry"))
          throw new HttpError(404, "ENOREVIEW", outcome.errors[0]);
        sendDecision(res, outcome, "decision refused");
      },
    },
  },
  "/v1/sets": {
    GET: {
      scope: "read",
      handle: ({ res, control }) => sendJson(res, 200, { sets: control.sets?.() ?? [] }),
    },
  },
  "/v1/sets/add": {
    POST: { scope: "policy", change: true, handle: (ctx) => changeSet(ctx, "add") },
  },
  "/v1/sets/del": {
    POST: { scope: "policy", change: true, handle: (ctx) => changeSet(ctx, "del") },
  },
  "/v1/redirects/original": {
    GET: {
      scope: "redirects",
      handle: ({ res, url, control }) => {
        const peer = parsePeer(url.searchParams.get("peer") ?? "");
        const protocol = url.searchParams.get("protocol") ?? "tcp";
        if (!peer || (protocol !== "tcp" && protocol !== "udp"))
          throw new HttpError(
            400,
            "EBADPEER",
            "give peer=IP:PORT or [IPv6]:PORT (the client as the proxy sees it) and protocol=tcp|udp",
          );
        const found = control.original(peer, protocol);
        if (!found)
          throw new HttpError(404, "ENOTREDIRECTED", "no redirected connection from that peer");
        sendJson(res, 200, found);
      },
    },
  },
  "/v1/ssh/authorized-keys": {
    GET: {
      scope: "ssh",
      handle: ({ res, url, control }) =>
        sendJson(res, 200, control.sshKeys(sshLogin(url.searchParams))),
    },
  },
  "/v1/events": {
    GET: {
      scope: "events",
      handle: async ({ res, url, control }) => {
        const page = await notOpen(control.queryHistory(historyQuery(url.searchParams)));
        if (!page)
          throw new HttpError(404, "ENOHISTORY", "the event history is off in this daemon");
        sendJson(res, 200, page);
      },
    },
  },
  "/v1/stats": {
    GET: {
      scope: "events",
      handle: async ({ res, url, control }) => {
        const page = await notOpen(control.flowStats?.(statsQuery(url.searchParams)));
        if (!page)
          throw new HttpError(404, "ENOHISTORY", "the event history is off in this daemon");
        sendJson(res, 200, page);
      },
    },
  },
  "/v1/anomalies": {
    GET: {
      scope: "events",
      handle: ({ res, control }) => {
        const view = control.anomalies?.();
        if (!view)
          throw new HttpError(404, "ENOANOMALY", "anomaly detection is off in this daemon");
        sendJson(res, 200, view);
      },
    },
  },
  "/v1/anomalies/accept": {
    POST: {
      scope: "policy",
      change: true,
      handle: async ({ req, res, control, who }) => {
        const body = readJson(await readBody(req));
        const id = (body as { id?: unknown } | null)?.id;
        if (typeof id !== "string" || !/^[0-9a-f]{12}$/.test(id))
          throw new HttpError(400, "EBADID", 'body must be {"id": "<12 hex digits>"}');
        if (!control.acceptAnomaly)
          throw new HttpError(404, "ENOANOMALY", "anomaly detection is off in this daemon");
        const accepted = control.acceptAnomaly(id, who);
        if (!accepted) throw new HttpError(404, "ENOTFOUND", `no anomaly ${id}`);
        sendJson(res, 200, accepted);
      },
    },
  },
  "/v1/events/stream": {
    GET: {
      scope: "events",
      handle: ({ req, res, url, subscribers }) =>
        subscribe(req, res, filterOf(url.searchParams), subscribers),
    },
  },
  "/v1/flows/stream": {
    GET: {
      scope: "events",
      handle: ({ req, res, flows, principal }) => flows.subscribe(req, res, principal),
    },
  },
  "/v1/console/url": {
    POST: {
      scope: "read",
      handle: async ({ req, res, principal, mintConsole }) => {
        const scopes = requestedScopes(await readBody(req), principal);
        const { url, expiresAt } = await mintConsole(scopes);
        sendJson(res, 200, {
          url,
          scopes: [...scopes],
          expiresAt: new Date(expiresAt).toISOString(),
        });
      },
    },
  },
  "/metrics": {
    GET: {
      scope: "metrics",
      handle: ({ res, control, counters }) => {
        res
          .writeHead(200, { "content-type": "text/plain; version=0.0.4; charset=utf-8" })
          .end(prometheusText(control.snapshot(), counters));
      },
    },
  },
};

/** A history query of a store that could not be opened (it is tried again): 503, saying why. */
async function notOpen<T>(answer: Promise<T> | T): Promise<T> {
  try {
    return await answer;
  } catch (err) {
    if (!(err instanceof HistoryUnavailableError)) throw err;
    throw new HttpError(503, err.code, `the event history is not open: ${err.message}`);
  }
}

/**
 * A history job's owner (its quota: a token, or root as one) and its caller hanging up: the
 * response's connection closing before the answer is sent drops or ends the job.
 */
function jobContext(res: ServerResponse, principal: Principal): JobContext {
  const hangup = new AbortController();
  res.once("close", () => {
    if (!res.writableFinished) hangup.abort();
  });
  const owner =
    principal.kind === "unix"
      ? "unix"
      : principal.kind === "token"
        ? `token ${principal.name}`
        : `console session of ${principal.mintedBy}`;
  return { owner, signal: hangup.signal };
}

async function suggested(
  res: ServerResponse,
  control: ApiControl,
  request: SuggestApiRequest,
  principal: Principal,
): Promise<void> {
  const outcome = await control.suggest?.(request, jobContext(res, principal));
  if (!outcome) throw new HttpError(404, "ENOHISTORY", "the event history is off in this daemon");
  if (!outcome.ok) throw new HttpError(422, "EPOLICY", "the policy is refused", outcome.errors);
  const { suggestion, warnings, problems } = outcome;
  sendJson(res, 200, { ...suggestion, warnings, problems });
}

/** POST /v1/sets/add|del: {set, entry, timeout?} (timeout: seconds, add only). */
async function changeSet(
  { req, res, control, who }: RequestContext,
  op: "add" | "del",
): Promise<void> {
  const body = readJson(await readBody(req)) as Record<string, unknown> | null;
  const set = body?.set;
  const entry = body?.entry;
  const timeout = body?.timeout;
  if (
    typeof set !== "string" ||
    typeof entry !== "string" ||
    (timeout !== undefined && op === "del")
  )
    throw new HttpError(
      400,
      "EBADSET",
      op === "add"
        ? 'body must be {"set": NAME, "entry": ADDRESS, "timeout"?: SECONDS}'
        : 'body must be {"set": NAME, "entry": ADDRESS}',
    );
  if (
    timeout !== undefined &&
    (typeof timeout !== "number" || !Number.isInteger(timeout) || timeout < 1)
  )
    throw new HttpError(
      400,
      "EBADSET",
      "timeout must be a positive whole number of seconds; leave it out for the set's timeout",
    );
  if (!control.changeSet) throw new HttpError(404, "ENOSET", "this daemon keeps no dynamic sets");
  const outcome = await control.changeSet(
    { op, set, entry, ...(typeof timeout === "number" ? { timeoutSeconds: timeout } : {}) },
    who,
  );
  if (!outcome.ok) throw new HttpError(outcome.status, outcome.code, outcome.message);
  sendJson(res, 200, outcome);
}

/** The longest trial: a day (a longer one is a policy nobody means to confirm). */
const MAX_CONFIRM_SECONDS = 86_400;

/** The most rules `top` lists. */
const MAX_TOP = 10_000;

/**
 * A whole number from 1 to `max` in the query parameter `name`; undefined when absent, else a
 * 400 that says what it must be (`what`: "whole seconds", "a count").
 */
function wholeParam(
  params: URLSearchParams,
  name: string,
  max: number,
  what: string,
): number | undefined {
  const text = params.get(name);
  if (text === null) return undefined;
  if (!/^\d{1,9}$/.test(text) || Number(text) < 1 || Number(text) > max)
    throw new HttpError(
      400,
      "EBADPARAM",
      `${name} must be ${what} from 1 to ${max}, got '${text}'`,
    );
  return Number(text);
}

/** `top`: how many of the busiest rules /v1/rules lists (all when absent). */
const topOf = (params: URLSearchParams): number | undefined =>
  wholeParam(params, "top", MAX_TOP, "a count");

/** The `n` rules that judged the most connections (then packets), busiest first; a stable sort. */
function busiest(rules: readonly RuleStats[], n: number): RuleStats[] {
  const desc = (a: bigint, b: bigint) => (a > b ? -1 : a < b ? 1 : 0);
  return [...rules]
    .sort((a, b) => desc(a.connections, b.connections) || desc(a.packets, b.packets))
    .slice(0, n);
}

/** `confirm=SECONDS` of PUT /v1/policy: the policy is on trial for that long (1 s to a day). */
function confirmOf(params: URLSearchParams): number | undefined {
  const seconds = wholeParam(params, "confirm", MAX_CONFIRM_SECONDS, "whole seconds");
  return seconds === undefined ? undefined : seconds * 1000;
}

/** user, client, client_port, server, server_port, key -> the login (400 EBADLOGIN if wrong). */
function sshLogin(params: URLSearchParams): SshLoginQuery {
  const bad = (message: string) => new HttpError(400, "EBADLOGIN", message);
  const user = params.get("user") ?? "";
  const client = params.get("client") ?? "";
  if (!user) throw bad("give user=LOGIN");
  if (isIP(client) === 0) throw bad("give client=IP (the client's address, sshd's %C)");
  const port = (name: string): number | undefined => {
    const text = params.get(name);
    if (text === null) return undefined;
    if (!/^\d{1,5}$/.test(text) || Number(text) > 65535) throw bad(`${name} must be a port`);
    return Number(text);
  };
  const login: SshLoginQuery = { user, client: { ip: hexTail(client) } };
  const clientPort = port("client_port");
  if (clientPort !== undefined) login.client.port = clientPort;
  const server = params.get("server");
  if (server !== null) {
    const serverPort = port("server_port") ?? 22;
    if (isIP(server) === 0) throw bad("server must be an IP address");
    login.server = { ip: hexTail(server), port: serverPort };
  }
  const key = params.get("key");
  if (key !== null) login.key = key;
  return login;
}

/** "IP:PORT", "[IPv6]:PORT" or "IPv6:PORT" (split at the last colon) with a real address, else null. */
export function parsePeer(text: string): { ip: string; port: number } | null {
  const m = /^(?:\[([^\]]+)\]|([^[\]]+)):(\d{1,5})$/.exec(text);
  const ip = m?.[1] ?? m?.[2] ?? "";
  const port = Number(m?.[3]);
  if (!m || port > 65535 || isIP(ip) === 0) return null;
  return { ip: hexTail(ip), port };
}

/** "::ffff:10.0.0.1" -> "::ffff:a00:1": an IPv6 address with a dotted tail in plain hex groups. */
function hexTail(ip: string): string {
  const m = /^(.*:)(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(ip);
  if (!m) return ip;
  const [a, b, c, d] = [m[2], m[3], m[4], m[5]].map(Number) as [number, number, number, number];
  return `${m[1]}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
}

/**
 * `not` filters a request may give: each is matched against every live event of the
 * subscription on the daemon's event loop (800 fit in a request line: 46 µs an event each
 * subscription), and is a term of the history's SQL (past about 1000, SQLite refuses it).
 */
export const MAX_NOT_FILTERS = 32;

export function filterOf(params: URLSearchParams) {
  const nots = params.getAll("not").length;
  if (nots > MAX_NOT_FILTERS)
    throw new HttpError(
      400,
      "EFILTER",
      `${nots} 'not' filters: at most ${MAX_NOT_FILTERS} 'not' filters in one request`,
    );
  try {
    return parseFilter(params);
  } catch (err) {
    if (err instanceof FilterError) throw new HttpError(400, "EFILTER", err.message);
    throw err;
  }
}

/** since, until, process, peer, limit -> the statistics' question (400 if one is wrong). */
function statsQuery(params: URLSearchParams): StatsQuery {
  const q: StatsQuery = {};
  const { since, until, limit } = timesAndLimit(params);
  if (since !== undefined) q.since = since;
  if (until !== undefined) q.until = until;
  if (limit !== undefined) q.limit = limit;
  const process = params.get("process");
  const peer = params.get("peer");
  if (process) q.process = process;
  if (peer) q.peer = peer;
  return q;
}

function historyQuery(params: URLSearchParams): HistoryQuery {
  const q: HistoryQuery = filterOf(params);
  const { since, until, before, limit } = timesAndLimit(params);
  if (since !== undefined) q.since = since;
  if (until !== undefined) q.until = until;
  if (before !== undefined) q.before = before;
  if (limit !== undefined) q.limit = limit;
  return q;
}

function timesAndLimit(params: URLSearchParams) {
  const time = (name: string) => {
    const text = params.get(name);
    if (!text) return undefined;
    const ms = timeParam(text);
    // a time a Date cannot hold (past 8.64e15 ms, before 1970) is not a time either
    if (Number.isNaN(ms))
      throw new HttpError(
        400,
        "EBADTIME",
        `${name} '${text}' is not a time: give an ISO 8601 time with an offset ` +
          "(2026-12-03T10:00:00Z, 2026-12-03T11:00:00+01:00) or milliseconds since the epoch",
      );
    return ms;
  };
  const int = (name: string) => {
    const text = params.get(name);
    if (!text) return undefined;
    if (!/^\d+$/.test(text))
      throw new HttpError(400, "EBADPARAM", `${name} must be a whole number`);
    return Number(text);
  };
  return { since: time("since"), until: time("until"), before: int("before"), limit: int("limit") };
}

/** The decision parts of the control; 404 when this daemon keeps no decisions. */
function decisionsOf(
  control: ApiControl,
): Required<
  Pick<ApiControl, "decisions" | "addDecision" | "removeDecision" | "review" | "answerReview">
> {
  const { decisions, addDecision, removeDecision, review, answerReview } = control;
  if (!decisions || !addDecision || !removeDecision || !review || !answerReview)
    throw new HttpError(404, "ENODECISIONS", "this daemon keeps no local decisions");
  return { decisions, addDecision, removeDecision, review, answerReview };
}

function sendDecision(res: ServerResponse, outcome: DecisionOutcome, refused: string): void {
  if (!outcome.ok) throw new HttpError(422, "EDECISION", refused, outcome.errors);
  sendJson(res, 200, outcome);
}

const LIFETIME_HINT = "lifetime: once, reboot, forever or a duration (1h, 30m, 90s)";

/** A review answer from a request body; 400 naming what is missing. */
function reviewAnswer(body: unknown): ReviewAnswer {
  const b = (typeof body === "object" && body !== null ? body : {}) as Record<string, unknown>;
  const { id, action, scope, lifetime, name } = b;
  if (typeof id !== "string" || id === "")
    throw new HttpError(400, "EBADREVIEW", "id: the review queue entry");
  if (action !== "allow" && action !== "block")
    throw new HttpError(400, "EBADREVIEW", "action: allow or block");
  const s = scope ?? "host";
  if (s !== "host" && s !== "domain" && s !== "wildcard")
    throw new HttpError(400, "EBADREVIEW", "scope: host, domain or wildcard");
  if (typeof lifetime !== "string") throw new HttpError(400, "EBADREVIEW", LIFETIME_HINT);
  if (name !== undefined && typeof name !== "string")
    throw new HttpError(400, "EBADREVIEW", "name: a DNS name or pattern");
  return { id, action, scope: s, lifetime, ...(name !== undefined ? { name } : {}) };
}

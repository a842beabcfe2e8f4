// The CLI's side of the API: one request, or a stream of live events, over the unix socket or
// TCP (bearer token from --token-file, TLS for https:// with an optional --ca).
import { request as httpRequest, type IncomingMessage, type RequestOptions } from "node:http";
import { request as httpsRequest } from "node:https";
import { readFileSync } from "node:fs";
import { createInterface } from "node:readline";
import type { MoatEvent } from "../../datapath/index.ts";
import type { OptionValues } from "../command.ts";
import { readCliToken } from "./token-file.ts";

/**
 * The daemon's API socket when --api is not given: the daemon's own default (src/api/listen.ts;
 * a unit test checks they agree). Importing it from the API's face would load the whole server,
 * the policy loader included, into every `moat status`.
 */
export const DEFAULT_SOCKET = "/run/moat/api.sock";

export interface ApiTarget {
  /** As given, for messages. */
  text: string;
  socketPath?: string;
  host?: string;
  port?: number;
  tls: boolean;
  token?: string;
  ca?: Buffer;
}

export class ApiClientError extends Error {
  readonly code: string;
  readonly status: number;
  readonly details: string[];
  constructor(message: string, code = "EAPI", status = 0, details: string[] = []) {
    super(message);
    this.name = "ApiClientError";
    this.code = code;
    this.status = status;
    this.details = details;
  }
}

/** The options every API command takes. */
export const API_OPTIONS = {
  api: { type: "string" },
  "token-file": { type: "string" },
  ca: { type: "string" },
} as const;

export const API_USAGE =
  "[--api unix:PATH | HOST:PORT | https://HOST:PORT] [--token-file FILE] [--ca FILE]";

export function apiTarget(values: OptionValues): ApiTarget {
  const text = typeof values.api === "string" ? values.api : `unix:${DEFAULT_SOCKET}`;
  const tokenFile = values["token-file"];
  const target: ApiTarget = { text, tls: false };
  if (text.startsWith("unix:")) target.socketPath = text.slice(5);
  else {
    const m = /^(?:(https?):\/\/|tcp:)?(\[[^\]]+\]|[^:/]+):(\d+)\/?$/.exec(text);
    if (!m?.[2] || !m[3])
      throw new ApiClientError(
        `--api '${text}' is not unix:PATH, HOST:PORT or https://HOST:PORT`,
        "EUSAGE",
      );
    target.tls = m[1] === "https";
    target.host = m[2].replace(/^\[|\]$/g, "");
    target.port = Number(m[3]);
  }
  if (typeof tokenFile === "string") target.token = readCliToken(tokenFile);
  if (typeof values.ca === "string") target.ca = readFileSync(values.ca);
  return target;
}

function send(
  target: ApiTarget,
  method: string,
  path: string,
  body?: string,
): Promise<IncomingMessage> {
  const headers: Record<string, string> = {};
  if (target.token) headers.authorization = `Bearer ${target.token}`;
  if (body !== undefined)
    headers["content-type"] = path === "/v1/mode" ? "application/json" : "application/yaml";
  const options: RequestOptions & { ca?: Buffer } = { method, path, headers };
  if (target.socketPath) options.socketPath = target.socketPath;
  else {
    options.host = target.host ?? "127.0.0.1";
    options.port = target.port ?? 0;
  }
  if (target.ca) options.ca = target.ca;
  return new Promise((resolve, reject) => {
    const req = (target.tls ? httpsRequest : httpRequest)(options, resolve);
    req.once("error", (err: NodeJS.ErrnoException) =>
      reject(
        new ApiClientError(
          `cannot reach the moat daemon at ${target.text}: ${err.code ?? err.message}` +
            (err.code === "EACCES" ? " (the API socket is root-only; run as root)" : "") +
            (err.code === "ENOENT" || err.code === "ECONNREFUSED"
              ? " (is 'moat run' running?)"
              : ""),
          err.code ?? "EAPI",
        ),
      ),
    );
    req.end(body);
  });
}

async function readAll(res: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of res as AsyncIterable<Buffer>) chunks.push(chunk);
  return Buffer.concat(chunks).toString("utf8");
}

/** The response body parsed as JSON; a non-2xx answer throws with the API's message. */
export async function call<T>(
  target: ApiTarget,
  method: string,
  path: string,
  body?: string,
): Promise<T> {
  const res = await send(target, method, path, body);
  const text = await readAll(res);
  const status = res.statusCode ?? 0;
  if (status >= 200 && status < 300) {
    return (res.headers["content-type"] ?? "").startsWith("application/json")
      ? (JSON.parse(text) as T)
      : (text as T);
  }
  let error: { code?: string; message?: string; details?: string[] } = {};
  try {
    error = (JSON.parse(text) as { error?: typeof error }).error ?? {};
  } catch {
    // not JSON: use the status line
  }
  throw new ApiClientError(
    error.message ?? `HTTP ${status}`,
    error.code ?? "EAPI",
    status,
    error.details ?? [],
  );
}

/** Live events until the connection ends; `onOpen` runs once the subscription is live. */
export async function* streamEvents(
  target: ApiTarget,
  query: URLSearchParams,
  onOpen?: () => void,
): AsyncGenerator<MoatEvent> {
  const q = query.toString();
  const res = await send(target, "GET", `/v1/events/stream${q ? `?${q}` : ""}`);
  if (res.statusCode !== 200) {
    const text = await readAll(res);
    let message = `HTTP ${res.statusCode}`;
    try {
      message = (JSON.parse(text) as { error: { message: string } }).error.message;
    } catch {
      // keep the status
    }
    throw new ApiClientError(message, "EAPI", res.statusCode ?? 0);
  }
  let opened = false;
  for await (const line of createInterface({ input: res })) {
    if (!opened && line.startsWith(":")) {
      opened = true;
      onOpen?.();
    }
    if (line.startsWith("data: ")) yield JSON.parse(line.slice(6)) as MoatEvent;
  }
}

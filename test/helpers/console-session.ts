// A web console session for tests: mint a login link over the API (as `moat console` does),
// trade its secret for the cookies, and the headers a browser would then send.
import assert from "node:assert/strict";
import { http, type Where } from "./api-client.ts";

export interface MintedUrl {
  url: string;
  scopes: string[];
  expiresAt: string;
}

export async function mintConsoleUrl(where: Where, scopes?: string[]): Promise<MintedUrl> {
  const r = await http(where, "POST", "/v1/console/url", JSON.stringify(scopes ? { scopes } : {}));
  assert.equal(r.status, 200, r.body);
  return JSON.parse(r.body) as MintedUrl;
}

/** The console listener's port and the login secret of a minted URL. */
export function splitUrl(url: string): { port: number; secret: string } {
  const u = new URL(url);
  return { port: Number(u.port), secret: u.hash.slice(1) };
}

export interface Session {
  cookie: string;
  csrf: string;
  setCookie: string[];
}

export async function login(port: number, secret: string): Promise<Session> {
  const r = await http(
    { port, headers: { host: `127.0.0.1:${port}`, "content-type": "application/json" } },
    "POST",
    "/console/session",
    JSON.stringify({ secret }),
  );
  assert.equal(r.status, 200, r.body);
  const setCookie = r.headers["set-cookie"] as string[];
  const cookie = setCookie.map((c) => c.split(";")[0]).join("; ");
  return { cookie, csrf: (JSON.parse(r.body) as { csrf: string }).csrf, setCookie };
}

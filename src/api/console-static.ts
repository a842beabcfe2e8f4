// The web console's files (build/web/, made by `make web`) under /console/, with a CSP that lets
// a page load only its own files and talk only to its own origin.
import { readFileSync } from "node:fs";
import type { ServerResponse } from "node:http";
import { extname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { HttpError } from "./errors.ts";

export const WEB_DIR = fileURLToPath(new URL("../../build/web/", import.meta.url));

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".map": "application/json",
};

export const CONSOLE_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join("; ");

/** Headers every console response carries. */
export const CONSOLE_HEADERS: Record<string, string> = {
  "content-security-policy": CONSOLE_CSP,
  "referrer-policy": "no-referrer",
  "x-content-type-options": "nosniff",
  "cache-control": "no-store",
};

/** Pages a browser may load before it has a session: the login page and its script. */
export const PUBLIC_FILES = new Set(["login.html", "login.js", "login.css"]);

/** "/console/" -> "live.html", "/console/login" -> "login.html", "/console/x.js" -> "x.js". */
export function consoleFile(pathname: string): string {
  const rest = pathname.slice("/console/".length);
  if (rest === "") return "live.html";
  if (rest === "login") return "login.html";
  if (!/^[A-Za-z0-9_-][A-Za-z0-9_.-]*$/.test(rest) || !TYPES[extname(rest)])
    throw new HttpError(404, "ENOTFOUND", `no console file ${pathname}`);
  return rest;
}

export function sendConsoleFile(res: ServerResponse, file: string, dir = WEB_DIR): void {
  let body: Buffer;
  try {
    body = readFileSync(join(dir, file));
  } catch {
    throw new HttpError(
      404,
      "ENOTFOUND",
      `no console file ${file} (the console is built by 'make web' into build/web/)`,
    );
  }
  res
    .writeHead(200, { ...CONSOLE_HEADERS, "content-type": TYPES[extname(file)] ?? "text/plain" })
    .end(body);
}

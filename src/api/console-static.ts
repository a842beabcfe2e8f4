// The web console's files (build/web/, made by `make web`) under /console/, with a CSP that lets
// a page load only its own files and talk only to its own origin.
import { closeSync, fstatSync, openSync, readFileSync, statSync, type BigIntStats } from "node:fs";
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

/** A console file as last read, and the identity of what was read. */
interface HeldFile {
  ino: bigint;
  size: bigint;
  mtimeNs: bigint;
  ctimeNs: bigint;
  body: Buffer;
}

// Each file once in memory, every answer written from it: a slow reader then holds a reference,
// not a copy of its own (playground.js is ~1.4 MB). Only files that exist are held, so the map
// is no larger than the build directory.
const held = new Map<string, HeldFile>();

function sameFile(a: HeldFile, b: BigIntStats): boolean {
  return a.ino === b.ino && a.size === b.size && a.mtimeNs === b.mtimeNs && a.ctimeNs === b.ctimeNs;
}

/** The file's content, read again only when it changed on disk (a rebuilt console); else null. */
function consoleBody(path: string): Buffer | null {
  try {
    const known = held.get(path);
    if (known && sameFile(known, statSync(path, { bigint: true }))) return known.body;
    // the identity comes from the open file, so a file replaced mid-read is read again next time
    const fd = openSync(path, "r");
    try {
      const st = fstatSync(fd, { bigint: true });
      if (!st.isFile()) throw new Error("not a file");
      const body = readFileSync(fd);
      const { ino, size, mtimeNs, ctimeNs } = st;
      held.set(path, { ino, size, mtimeNs, ctimeNs, body });
      return body;
    } finally {
      closeSync(fd);
    }
  } catch {
    held.delete(path);
    return null;
  }
}

export function sendConsoleFile(res: ServerResponse, file: string, dir = WEB_DIR): void {
  const body = consoleBody(join(dir, file));
  if (!body)
    throw new HttpError(
      404,
      "ENOTFOUND",
      `no console file ${file} (the console is built by 'make web' into build/web/)`,
    );
  res
    .writeHead(200, { ...CONSOLE_HEADERS, "content-type": TYPES[extname(file)] ?? "text/plain" })
    .end(body);
}

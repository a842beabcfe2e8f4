// Bearer tokens for TCP listeners, from a root-only file. Each line is "TOKEN", "NAME TOKEN" or
// "NAME SCOPES TOKEN" (SCOPES: comma-separated, scopes.ts); NAME is who the audit log says made
// a change (default "token"). A line without SCOPES has every scope, as before scopes existed:
// such a token could always apply policies and switch the mode.
import { timingSafeEqual } from "node:crypto";
import { MAX_TOKEN_FILE_BYTES, readTrustedFile, UnsafeFileError } from "../host/index.ts";
import { parseScopes, ScopeError, SCOPES, type Scope } from "./scopes.ts";

export class ApiConfigError extends Error {
  readonly code = "EAPICONFIG";
  constructor(message: string) {
    super(message);
    this.name = "ApiConfigError";
  }
}

/** A shorter token is refused. */
const MIN_TOKEN_LENGTH = 16;

export interface Token {
  name: string;
  secret: Buffer;
  scopes: ReadonlySet<Scope>;
  /** False for an old-format line (every scope). */
  scoped: boolean;
}

export function readTokenFile(path: string): Token[] {
  let text: string;
  try {
    // checked as src/host/trusted-file.ts says, and readable by root only
    text = readTrustedFile(path, {
      what: "API token file",
      maxBytes: MAX_TOKEN_FILE_BYTES,
      secret: true,
    });
  } catch (err) {
    if (err instanceof UnsafeFileError) throw new ApiConfigError(err.message);
    throw err;
  }
  const tokens: Token[] = [];
  text.split("\n").forEach((raw, i) => {
    const line = raw.trim();
    if (!line || line.startsWith("#")) return;
    const at = `API token file ${path}:${i + 1}`;
    const parts = line.split(/\s+/);
    if (parts.length > 3)
      throw new ApiConfigError(`${at}: a line is "TOKEN", "NAME TOKEN" or "NAME SCOPES TOKEN"`);
    const secret = parts.at(-1) ?? "";
    const name = parts.length >= 2 ? (parts[0] ?? "") : "token";
    let scopes: ReadonlySet<Scope> = new Set(SCOPES);
    try {
      if (parts.length === 3) scopes = parseScopes(parts[1] ?? "");
    } catch (err) {
      if (!(err instanceof ScopeError)) throw err;
      // a word as long as a token is most likely the token, written before the scopes: an
      // error reaches logs, so it is not quoted
      if (err.word.length >= MIN_TOKEN_LENGTH)
        throw new ApiConfigError(
          `${at}: the second word is no list of scopes; a line is "TOKEN", "NAME TOKEN" or "NAME SCOPES TOKEN" (the token comes last)`,
        );
      throw new ApiConfigError(`${at}: ${err.message}`);
    }
    if (secret.length < MIN_TOKEN_LENGTH)
      throw new ApiConfigError(`${at}: a token must be at least ${MIN_TOKEN_LENGTH} characters`);
    tokens.push({ name, secret: Buffer.from(secret), scopes, scoped: parts.length === 3 });
  });
  if (tokens.length === 0) throw new ApiConfigError(`API token file ${path} holds no token`);
  return tokens;
}

/** The token if `header` is "Bearer <a known token>", else null (constant time per token). */
export function authenticate(tokens: readonly Token[], header: string | undefined): Token | null {
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header ?? "");
  if (!m?.[1]) return null;
  const given = Buffer.from(m[1]);
  let found: Token | null = null;
  for (const t of tokens)
    if (t.secret.length === given.length && timingSafeEqual(t.secret, given)) found = t;
  return found;
}

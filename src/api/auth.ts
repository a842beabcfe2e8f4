// Bearer tokens for TCP listeners, from a root-only file. Each line is "TOKEN" or "NAME TOKEN";
// NAME is who the audit log says made a policy change (default "token").
import { timingSafeEqual } from "node:crypto";
import { readTrustedFile, UnsafeFileError } from "../config/trusted-file.ts";
import { MAX_TOKEN_FILE_BYTES } from "../config/load.ts";

export class ApiConfigError extends Error {
  readonly code = "EAPICONFIG";
  constructor(message: string) {
    super(message);
    this.name = "ApiConfigError";
  }
}

export interface Token {
  name: string;
  secret: Buffer;
}

export function readTokenFile(path: string): Token[] {
  let text: string;
  try {
    // checked as src/config/trusted-file.ts says, and readable by root only
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
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (!line || line.startsWith("#")) continue;
    const parts = line.split(/\s+/);
    const [name, secret] = parts.length >= 2 ? [parts[0] ?? "", parts[1] ?? ""] : ["token", line];
    if (secret.length < 16)
      throw new ApiConfigError(`API token file ${path}: a token must be at least 16 characters`);
    tokens.push({ name, secret: Buffer.from(secret) });
  }
  if (tokens.length === 0) throw new ApiConfigError(`API token file ${path} holds no token`);
  return tokens;
}

/** The token's name if `header` is "Bearer <a known token>", else null (constant time per token). */
export function authenticate(tokens: readonly Token[], header: string | undefined): string | null {
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header ?? "");
  if (!m?.[1]) return null;
  const given = Buffer.from(m[1]);
  let found: string | null = null;
  for (const t of tokens)
    if (t.secret.length === given.length && timingSafeEqual(t.secret, given)) found = t.name;
  return found;
}

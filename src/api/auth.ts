// Bearer tokens for TCP listeners, from a root-only file. Each line is "TOKEN" or "NAME TOKEN";
// NAME is who the audit log says made a policy change (default "token").
import { lstatSync, readFileSync } from "node:fs";
import { timingSafeEqual } from "node:crypto";

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
  let st;
  try {
    st = lstatSync(path);
  } catch (err) {
    throw new ApiConfigError(`cannot read API token file ${path}: ${(err as Error).message}`);
  }
  if (st.isSymbolicLink()) throw new ApiConfigError(`API token file ${path} is a symlink`);
  if (!st.isFile()) throw new ApiConfigError(`API token file ${path} is not a regular file`);
  if ((st.mode & 0o077) !== 0)
    throw new ApiConfigError(
      `API token file ${path} is readable or writable by group/others (mode ${(st.mode & 0o777).toString(8)}); chmod 600 it`,
    );
  if (process.getuid?.() === 0 && st.uid !== 0)
    throw new ApiConfigError(`API token file ${path} is not owned by root`);
  const tokens: Token[] = [];
  for (const raw of readFileSync(path, "utf8").split("\n")) {
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

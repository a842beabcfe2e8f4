// The CLI's --token-file: the one token it sends. The file holds it alone or as a line of the
// daemon's token file ("NAME TOKEN", "NAME SCOPES TOKEN"); blank lines and lines starting with
// '#' are skipped. Picking one of several tokens would send a credential the user did not choose,
// so such a file is refused. Messages name lines, never a token.
import { readFileSync } from "node:fs";

export class TokenFileError extends Error {
  readonly code = "ETOKENFILE";
  constructor(message: string) {
    super(message);
    this.name = "TokenFileError";
  }
}

/** The daemon refuses shorter tokens (src/api/auth.ts), so a shorter word is no token. */
const MIN_TOKEN_LENGTH = 16;

export function readCliToken(path: string): string {
  const at = `--token-file ${path}`;
  const found: { line: number; token: string }[] = [];
  readFileSync(path, "utf8")
    .split("\n")
    .forEach((raw, i) => {
      const line = raw.trim();
      if (!line || line.startsWith("#")) return;
      const words = line.split(/\s+/);
      if (words.length > 3)
        throw new TokenFileError(
          `${at}:${i + 1}: a line is "TOKEN", "NAME TOKEN" or "NAME SCOPES TOKEN" ('#' starts a comment only at a line's start)`,
        );
      const token = words.at(-1) ?? "";
      if (token.length < MIN_TOKEN_LENGTH)
        throw new TokenFileError(
          `${at}:${i + 1}: a token is at least ${MIN_TOKEN_LENGTH} characters`,
        );
      found.push({ line: i + 1, token });
    });
  const [first, ...more] = found;
  if (!first) throw new TokenFileError(`${at} holds no token (a line "TOKEN" or "NAME TOKEN")`);
  if (more.length > 0)
    throw new TokenFileError(
      `${at} holds ${found.length} tokens (lines ${found.map((f) => f.line).join(", ")}); it must hold the one to send`,
    );
  return first.token;
}

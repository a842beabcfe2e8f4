// Reads a key that must stay private (a webhook's HMAC key): a regular file, not a symlink,
// owned by root or by moat's own user, readable by its owner only.
import { closeSync, constants, fstatSync, openSync, readFileSync } from "node:fs";

export class PublishError extends Error {
  readonly code = "EPUBLISH";
  constructor(message: string) {
    super(message);
    this.name = "PublishError";
  }
}

export function readSecretFile(path: string): Buffer {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ELOOP") throw new PublishError(`secret file ${path} is a symlink; refusing it`);
    throw new PublishError(`cannot read secret file ${path}: ${(e as Error).message}`);
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new PublishError(`secret file ${path} is not a regular file`);
    const me = process.geteuid?.() ?? 0;
    if (st.uid !== 0 && st.uid !== me)
      throw new PublishError(`secret file ${path} is owned by uid ${st.uid}, not root`);
    if ((st.mode & 0o077) !== 0)
      throw new PublishError(
        `secret file ${path} is readable or writable by others (mode ${(st.mode & 0o777).toString(8)}); chmod 600 it`,
      );
    const key = readFileSync(fd).toString("utf8").trim();
    if (key.length === 0) throw new PublishError(`secret file ${path} is empty`);
    return Buffer.from(key, "utf8");
  } finally {
    closeSync(fd);
  }
}

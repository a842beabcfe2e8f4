// The break-glass keys of moat ssh-authkeys: read only when the daemon cannot be asked, and only
// from a regular file that root owns and no one else can read or write (as sshd's StrictModes
// would have it): "LOGIN TYPE BASE64 [COMMENT]" lines, "*" for every login.
import { closeSync, constants, fstatSync, openSync, readFileSync } from "node:fs";

export const BREAK_GLASS_FILE = "/etc/moat/ssh-break-glass-keys";

/** The keys for `user`; throws with the reason the file is not used. */
export function breakGlassKeys(path: string, user: string): string[] {
  const fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  let text: string;
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new Error(`${path} is not a regular file`);
    if (st.uid !== 0) throw new Error(`${path} is not owned by root`);
    if ((st.mode & 0o077) !== 0)
      throw new Error(`${path} is readable or writable by others (chmod 600)`);
    if (st.size > 64 * 1024) throw new Error(`${path} is larger than 64 KiB`);
    text = readFileSync(fd, "utf8");
  } finally {
    closeSync(fd);
  }
  const keys: string[] = [];
  for (const line of text.split("\n")) {
    const m = /^\s*(\S+)\s+(\S+\s+\S+.*?)\s*$/.exec(line);
    if (!m || line.trimStart().startsWith("#")) continue;
    if (m[1] === user || m[1] === "*") keys.push(m[2] ?? "");
  }
  return keys;
}

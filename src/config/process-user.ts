// A process's user as a local decision names it, read as a rule's `process.user` entry is: a uid
// (a number, or a string of digits, as the matcher reads it) or a user name, which the compiler
// resolves through /etc/passwd (a name no account has matches no process).

/** The largest uid (2^32 - 1 is the kernel's "no uid"). */
export const MAX_UID = 2 ** 32 - 2;

/** What is wrong with a user entry, or null when it is one. */
export function processUserProblem(user: unknown): string | null {
  if (typeof user === "string" && user !== "" && !/^\d+$/.test(user)) return null;
  const uid = typeof user === "string" && /^\d+$/.test(user) ? Number(user) : user;
  if (typeof uid !== "number" || !Number.isInteger(uid) || uid < 0)
    return "process.user: a uid or a user name";
  if (uid > MAX_UID) return `process.user: a uid is at most ${MAX_UID}, got ${String(user)}`;
  return null;
}

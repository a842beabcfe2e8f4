// layer7.ssh -> model. Two uses that never mix: egress rules judge the servers this host
// connects to (host_key, version: moat's relay reads them from the key exchange); ingress rules
// judge logins to this host's sshd by public key and login name (client_key, user: moat
// ssh-authkeys, sshd's AuthorizedKeysCommand, prints the keys they allow).
import type { CheckContext } from "./check-context.ts";
import type { RuleDirection, SshClientKey, SshMatch } from "./model.ts";
import type { SshDocument } from "./schema-rule.ts";
import type { PathSegment } from "./yaml-source.ts";

/** Public key types OpenSSH accepts in authorized_keys. */
export const CLIENT_KEY_TYPES = [
  "ssh-ed25519",
  "ssh-rsa",
  "ecdsa-sha2-nistp256",
  "ecdsa-sha2-nistp384",
  "ecdsa-sha2-nistp521",
  "sk-ssh-ed25519@openssh.com",
  "sk-ecdsa-sha2-nistp256@openssh.com",
  "ssh-dss",
];

const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

/** The type string a key blob starts with (its first SSH string), or null if it has none. */
function blobType(base64: string): string | null {
  let bytes: string;
  try {
    bytes = atob(base64);
  } catch {
    return null;
  }
  if (bytes.length < 4) return null;
  const n =
    ((bytes.charCodeAt(0) << 24) |
      (bytes.charCodeAt(1) << 16) |
      (bytes.charCodeAt(2) << 8) |
      bytes.charCodeAt(3)) >>>
    0;
  return n > 0 && n <= 64 && bytes.length >= 4 + n ? bytes.slice(4, 4 + n) : null;
}

/** "type base64 [comment]" -> the key, or an error message. */
export function parseClientKey(line: string): SshClientKey | string {
  const [type = "", key = "", ...rest] = line.trim().split(/\s+/);
  if (!CLIENT_KEY_TYPES.includes(type))
    return CLIENT_KEY_TYPES.some((t) => line.includes(t))
      ? 'write the key alone ("TYPE BASE64 COMMENT"): moat prints no authorized_keys options'
      : `'${type}' is not a public key type (${CLIENT_KEY_TYPES.slice(0, 3).join(", ")}, ...)`;
  if (!BASE64.test(key) || key.length % 4 !== 0) return "the key is not base64";
  const inner = blobType(key);
  if (inner !== type) return `the key's blob is of type '${inner ?? "none"}', not '${type}'`;
  const comment = rest.join(" ");
  return { type, key, comment, text: comment ? `${type} ${key} ${comment}` : `${type} ${key}` };
}

export function normalizeSsh(
  ctx: CheckContext,
  doc: SshDocument,
  path: PathSegment[],
  direction: RuleDirection,
): SshMatch {
  const { client_key, ...rest } = doc;
  const result: SshMatch = { ...rest, pos: ctx.pos(path) };
  const logins = (["client_key", "user"] as const).filter((k) => doc[k] !== undefined);
  if (direction !== "ingress")
    for (const k of logins)
      ctx.error(
        [...path, k],
        `layer7.ssh.${k} judges logins to this host's sshd (moat ssh-authkeys): the rule's direction must be ingress`,
      );
  // host_key and version on a rule that is not egress: refused with the other L7 rules
  if (client_key && ctx.clean([...path, "client_key"])) {
    const keys: SshClientKey[] = [];
    client_key.forEach((line, i) => {
      const key = parseClientKey(line);
      if (typeof key === "string") ctx.error([...path, "client_key", i], key);
      else keys.push(key);
    });
    result.client_key = keys;
  }
  return result;
}

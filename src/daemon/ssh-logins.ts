// moat ssh-authkeys' question to the daemon: which keys the running policy lets sshd accept for
// a login. Every key judged is an event (hook ssh_authkeys) unless it was allowed by a rule
// without `log: true`, as for connections.
import { createHash } from "node:crypto";
import type { SshKeysView, SshLoginQuery } from "../api/index.ts";
import type { PolicyModel } from "../config/index.ts";
import type { MoatEvent } from "../datapath/index.ts";
import { judgeSshLogin, type SshKeyVerdict } from "../policy/index.ts";

export interface SshLoginParts {
  model: () => PolicyModel;
  generation: () => number;
  push: (event: MoatEvent) => void;
}

/** A key's fingerprint as ssh-keygen -l prints it; the key as written when it is not base64. */
export function keyFingerprint(base64: string): string {
  const blob = Buffer.from(base64, "base64");
  if (blob.length === 0) return base64.slice(0, 16);
  return `SHA256:${createHash("sha256").update(blob).digest("base64").replace(/=+$/, "")}`;
}

function loginEvent(
  login: SshLoginQuery,
  v: SshKeyVerdict,
  fp: string,
  generation: number,
): MoatEvent {
  const server = login.server ?? { ip: login.client.ip.includes(":") ? "::" : "0.0.0.0", port: 22 };
  return {
    time: new Date().toISOString(),
    type: v.verdict,
    mode: v.mode,
    rule: v.rule,
    direction: "ingress",
    protocol: "tcp",
    local: { ...server },
    remote: { ip: login.client.ip, port: login.client.port ?? 0 },
    interface: null,
    process: null,
    layer7: {
      ssh: { user: login.user, client_key: v.key.comment ? `${fp} ${v.key.comment}` : fp },
    },
    connection: null,
    reason: "new",
    verdict: v.verdict,
    hook: "ssh_authkeys",
    generation,
  };
}

export function sshLoginKeys(parts: SshLoginParts, login: SshLoginQuery): SshKeysView {
  const generation = parts.generation();
  const verdicts = judgeSshLogin(parts.model(), login);
  const view: SshKeysView = { generation, keys: [], verdicts: [] };
  for (const v of verdicts) {
    const fingerprint = keyFingerprint(v.key.key);
    if (v.printed) view.keys.push(v.key.text);
    if (v.report) parts.push(loginEvent(login, v, fingerprint, generation));
    view.verdicts.push({
      key: v.key.text,
      fingerprint,
      verdict: v.verdict,
      rule: v.rule,
      reason: v.reason,
    });
  }
  return view;
}

// Who is calling the API, as the audit log names them: a TCP caller by its token's name, a
// unix-socket caller by the uid and pid the kernel recorded when it connected (SO_PEERCRED).
import type { Socket } from "node:net";
import { native } from "../datapath/addon.ts";
import { SCOPES, type Scope } from "./scopes.ts";

export type Principal =
  | { kind: "unix"; uid: number | null; pid: number | null; scopes: ReadonlySet<Scope> }
  | { kind: "token"; name: string; scopes: ReadonlySet<Scope> }
  /** A web console session (console-sessions.ts), named by whoever minted its login. */
  | { kind: "console"; mintedBy: string; scopes: ReadonlySet<Scope> };

/** Only root can open the unix socket (0600 in a 0700 directory): it has every scope. */
const UNIX_SCOPES: ReadonlySet<Scope> = new Set(SCOPES);

/** "token NAME" or "unix uid UID pid PID", as the audit log and the daemon's output show it. */
export function describePrincipal(p: Principal): string {
  if (p.kind === "token") return `token ${p.name}`;
  if (p.kind === "console") return `console session of ${p.mintedBy}`;
  if (p.uid === null) return "unix socket (peer unknown)";
  return `unix uid ${p.uid} pid ${p.pid}`;
}

const byConnection = new WeakMap<Socket, Principal>();

/** The unix-socket peer of `socket`, read once per connection. */
export function unixPrincipal(socket: Socket): Principal {
  let p = byConnection.get(socket);
  if (p) return p;
  const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
  let cred: { uid: number; pid: number } | null = null;
  try {
    if (typeof fd === "number" && fd >= 0) cred = native().peerCredentials(fd);
  } catch {
    // the connection is already gone, or no addon: the peer stays unknown
  }
  p = { kind: "unix", uid: cred?.uid ?? null, pid: cred?.pid ?? null, scopes: UNIX_SCOPES };
  byConnection.set(socket, p);
  return p;
}

// The contract between moat's L7 relay and its protocol handlers (HTTP, TLS, SSH): the relay
// accepts a redirected connection, reads its first bytes, and hands an L7Context to the handler of
// the protocol it sniffed. The handler extracts layer7 facts, asks for a judgement, reports it,
// and either ends the client or connects upstream and hands both sockets to the kernel.

import type { Socket } from "node:net";
import type { ConnectionFacts, Layer7Facts } from "../policy/facts.ts";

export type { ConnectionFacts, Layer7Facts } from "../policy/facts.ts";

export interface L7Context {
  client: Socket; // paused, bytes in `head` already read from it
  head: Buffer; // the first bytes, not yet forwarded
  original: { ip: string; port: number; family: 4 | 6 };
  /** The facts of this connection without layer7 (process, remote.names for this identity). */
  facts: ConnectionFacts;
  /** Judges the connection with these layer7 facts: the whole policy, first match. */
  judge(layer7: Layer7Facts): L7Decision;
  /**
   * A TCP connection to the original destination that moat's hooks let through as the latest
   * judgement that forwards it decided (rejected when every judgement so far blocks). "probe":
   * moat's own look at the server while the connection is still being judged (TLS probe).
   */
  connectUpstream(purpose?: "probe"): Promise<Socket>;
  /** Reports the decision (event with layer7 facts). */
  report(decision: L7Decision, layer7: Layer7Facts, extra?: { splice?: SpliceMode }): void;
  /** Hands both sockets to the kernel once nothing more needs judging; `pending` = bytes read
   * from `from` side not yet written. Returns how (sockmap | splice | copy). */
  splice(client: Socket, upstream: Socket): Promise<SpliceMode>;
  log(line: string): void;
}
export interface L7Decision {
  verdict: "allowed" | "blocked" | "detected";
  rule: string; // rule name or default pseudo-rule
  forward: boolean; // allowed or detected
  explanation: string[];
  /** The deciding rule's mode (the policy's for the defaults). */
  mode?: "detect" | "prevent";
  /** Whether report() sends an event: blocked or detected, or allowed by a rule with `log`. */
  report?: boolean;
}
export type SpliceMode = "sockmap" | "splice" | "copy";

/**
 * connectUpstream's refusal when no judgement so far lets the connection through and none the
 * facts still unknown could lead to: the connection is blocked whatever the server would show.
 */
export class NothingForwards extends Error {
  constructor() {
    super("no upstream connection for a connection nothing lets through");
  }
}
export type L7Handler = (ctx: L7Context) => Promise<void>;

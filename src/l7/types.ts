// The interface between moat's L7 relay and its protocol handlers: what the relay gives a handler
// for one connection (L7Context), and what a handler is.
import type { Socket } from "node:net";
import type { ConnectionFacts } from "../policy/facts.ts";
import type { Layer7Facts } from "../policy/facts.ts";

export interface L7Context {
  client: Socket; // paused, bytes in `head` already read from it
  head: Buffer; // the first bytes, not yet forwarded
  original: { ip: string; port: number; family: 4 | 6 };
  /** The facts of this connection without layer7 (process, remote.names for this identity). */
  facts: ConnectionFacts;
  /** Judges the connection with these layer7 facts: the whole policy, first match. */
  judge(layer7: Layer7Facts): L7Decision;
  /** A TCP connection to the original destination that moat's hooks let through. */
  connectUpstream(): Promise<Socket>;
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
}
export type SpliceMode = "sockmap" | "splice" | "copy";
export type L7Handler = (ctx: L7Context) => Promise<void>;

// The post-route labs' second link (docs/route-aware.md): namespace b reaches namespace a over
// evil0 too, and one uid's connections to a are policy-routed out of it, a route the route mirror
// does not see (it reads the main table).
import { execFileSync } from "node:child_process";
import type { Lab } from "./netns.ts";

export const EVIL_B = "10.66.0.1";
export const EVIL_A = "10.66.0.2";
/** Its connections are routed by table 4242, out of evil0. */
export const EVIL_UID = 4242;

/** evil0 (in b) - evil1 (in a), and table 4242 sending EVIL_UID's traffic to a's address by it. */
export function addEvil0Route(l: Lab): void {
  const ip = (...args: string[]) => execFileSync("ip", args);
  ip("link", "add", "evil0", "netns", l.b, "type", "veth", "peer", "evil1", "netns", l.a);
  ip("-n", l.b, "addr", "add", `${EVIL_B}/24`, "dev", "evil0");
  ip("-n", l.a, "addr", "add", `${EVIL_A}/24`, "dev", "evil1");
  ip("-n", l.b, "link", "set", "evil0", "up");
  ip("-n", l.a, "link", "set", "evil1", "up");
  ip("-n", l.b, "route", "add", `${l.v4.a}/32`, "via", EVIL_A, "dev", "evil0", "table", "4242");
  const uids = `${EVIL_UID}-${EVIL_UID}`;
  ip("-n", l.b, "rule", "add", "uidrange", uids, "lookup", "4242", "pref", "1000");
}

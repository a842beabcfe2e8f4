// What the ids signatures do to a connection, in words for `moat explain` (docs/policy.md,
// "ids"): the signatures whose header fits it, each way, and what a match does. They act after
// the rules' verdict and do not change it: a match is reported, and under ids.mode prevent a
// drop or reject signature cuts the connection once its bytes reached the socket.
import type { PolicyModel } from "../config/model.ts";
import type { ConnectionFacts } from "./facts.ts";
import { IdsMatcher } from "./ids-match.ts";

/** Signatures listed by sid at most, each way. */
const SHOWN = 8;

export function idsLines(model: PolicyModel, facts: ConnectionFacts): string[] {
  const ids = model.ids;
  if (!ids || ids.signatures.length === 0) return [];
  if (facts.protocol !== "tcp" && facts.protocol !== "udp") return [];
  const { local, remote } = facts;
  if (local.port === undefined || remote.port === undefined) return [];
  const matcher = new IdsMatcher(ids.signatures);
  const localEnd = { ip: local.ip, port: local.port };
  const remoteEnd = { ip: remote.ip, port: remote.port };
  const clientLocal = facts.direction === "egress";
  const out: string[] = [];
  for (const toServer of [true, false]) {
    const senderLocal = clientLocal === toServer;
    const watching = matcher.watching({
      protocol: facts.protocol,
      toServer,
      sender: senderLocal ? localEnd : remoteEnd,
      receiver: senderLocal ? remoteEnd : localEnd,
      senderLocal,
    });
    if (watching.length === 0) continue;
    const list = watching
      .slice(0, SHOWN)
      .map((r) => `sid ${r.sid} "${r.msg}" (${r.action})`)
      .join(", ");
    const more = watching.length > SHOWN ? ` and ${watching.length - SHOWN} more` : "";
    out.push(
      `ids ${toServer ? "to_server" : "to_client"}: the first ${ids.bytes} bytes are matched against ${list}${more}`,
    );
  }
  if (out.length === 0) return [];
  const sampled = ids.sample === 1 ? "" : ` (1 in ${ids.sample} connections is read)`;
  const then =
    ids.mode === "prevent"
      ? "a match is reported; a drop or reject signature's match cuts the connection, after the matched bytes reached the socket"
      : "a match is reported, nothing is cut (ids.mode detect)";
  out.push(`ids: ${then}${sampled}`);
  return out;
}

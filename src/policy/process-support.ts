// Which process and interface rules the socket hooks can enforce (docs/socket-hooks.md), checked at load so a
// rule is never silently left unenforced: each problem is a diagnostic at the rule's position.
//
// Outgoing connections are judged at connect()/sendmsg(), which know neither the local address nor
// the client port. Incoming ones are judged by the packet hooks (the interface they came in by)
// and by the accept hook (docs/socket-hooks.md, "The accept side"), at the listener a TCP SYN
// reaches (its owner); both judge by process tables that have no client port.
import { diagnostic, type Diagnostic } from "../config/diagnostics.ts";
import { PROTOCOL_NUMBERS, type PolicyModel, type Rule } from "../config/model.ts";
import { plainPos } from "../config/positions.ts";
import { commRange } from "./compile/process.ts";
import { protocolName } from "./match-layer4.ts";

/** What of the local side a rule names, which connect() does not know; null if nothing. */
function ownLocalNeeds(rule: Rule): { what: string; fields: string } | null {
  const local = !!rule.layer3?.local;
  const port = !!rule.layer4?.sourcePorts;
  if (!local && !port) return null;
  const what = [local && "the local address", port && "the source port"].filter(Boolean);
  const fields = [local && "'layer3.local'", port && "'layer4.source_port'"].filter(Boolean);
  return { what: what.join(" and "), fields: fields.join(" and ") };
}

export function processRuleProblems(model: PolicyModel): Diagnostic[] {
  const out: Diagnostic[] = [];
  const firstLocal = model.rules.find(
    (r) => r.direction !== "ingress" && (r.layer3?.local || r.layer4?.sourcePorts),
  );
  const firstSport = model.rules.find((r) => r.direction !== "egress" && r.layer4?.sourcePorts);
  for (const rule of model.rules) {
    const section = rule.process ?? rule.interface;
    if (!section) continue;
    const what = rule.process ? "a process" : "an interface";
    const ingress = rule.direction !== "egress";
    const protocol = rule.layer4?.protocol ?? null;
    if (
      protocol !== null &&
      protocol !== PROTOCOL_NUMBERS.tcp &&
      protocol !== PROTOCOL_NUMBERS.udp
    ) {
      out.push(
        diagnostic(
          section.pos,
          `rule '${rule.name}' names ${what} for protocol ${protocolName(protocol)}: the kernel knows the process (and interface) of TCP and UDP connections only; ${rule.process ? "a process" : "an interface"} section there would never match`,
        ),
      );
    }
    if (ingress && rule.process && rule.layer4?.protocol !== PROTOCOL_NUMBERS.tcp) {
      out.push(
        diagnostic(
          rule.process.pos,
          `rule '${rule.name}' names a process for incoming connections but does not say 'layer4: { protocol: tcp }': the accept hook judges a TCP connection at its listener, before anything reaches the process; a UDP datagram would reach its socket before the owner is known${rule.direction === "any" ? " (for outgoing connections only, write 'direction: egress')" : ""}`,
        ),
      );
    }
    if (ingress && firstSport && firstSport.index <= rule.index) {
      const why = "judge process and interface rules by tables without the client port";
      const where =
        firstSport === rule
          ? `and a source port: the packet hooks and the accept hook ${why}, so drop 'source_port' from it`
          : `after rule '${firstSport.name}' (line ${firstSport.pos.line}), which judges incoming connections by source port: the packet hooks and the accept hook ${why}, so move it above`;
      out.push(
        diagnostic(
          section.pos,
          `rule '${rule.name}' names ${what} for incoming connections ${where}`,
        ),
      );
    }
    // an incoming connection's interface is known to the packet hooks, which need no cgroup
    if (!model.attach.cgroup && (rule.process || rule.direction !== "ingress")) {
      out.push(
        diagnostic(
          section.pos,
          `rule '${rule.name}' names ${what}: set attach.cgroup (e.g. "/") so the socket hooks see the connections`,
        ),
      );
    }
    const own = ownLocalNeeds(rule);
    if (rule.direction !== "ingress" && own) {
      const ingressToo = rule.direction === "any" ? " (or write 'direction: ingress')" : "";
      out.push(
        diagnostic(
          section.pos,
          `rule '${rule.name}' names ${what} and ${own.what}: connect() knows neither the local address nor the source port, so the rule would never match an outgoing connection; drop ${own.fields} from it${ingressToo}`,
        ),
      );
    }
    if (rule.direction !== "ingress" && firstLocal && firstLocal.index < rule.index) {
      out.push(
        diagnostic(
          section.pos,
          `rule '${rule.name}' names ${what} after rule '${firstLocal.name}' (line ${firstLocal.pos.line}), which needs the local address or source port: connect() knows neither, so move it above`,
        ),
      );
    }
    const p = rule.process;
    if (!p) continue;
    const at = (field: string) => ({ ...plainPos(p.pos), path: `${p.pos.path}${field}` });
    for (const name of p.name ?? []) {
      if (!commRange(name)) {
        out.push(
          diagnostic(
            at(".name"),
            `process name '${name}': the kernel matches a name (at most 15 bytes, as comm holds it) exactly or by a trailing '*' only`,
          ),
        );
      }
    }
    for (const path of p.path ?? []) {
      if (!path.startsWith("/")) {
        out.push(
          diagnostic(at(".path"), `process path '${path}': must be an absolute path or glob`),
        );
      }
    }
  }
  return out;
}

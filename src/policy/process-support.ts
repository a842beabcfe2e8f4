// Which process and interface rules the socket hooks can enforce (docs/socket-hooks.md), checked at load so a
// rule is never silently left unenforced: each problem is a diagnostic at the rule's position.
import { diagnostic, type Diagnostic } from "../config/diagnostics.ts";
import type { PolicyModel } from "../config/model.ts";
import { commRange } from "./compile/process.ts";

export function processRuleProblems(model: PolicyModel): Diagnostic[] {
  const out: Diagnostic[] = [];
  const firstLocal = model.rules.find(
    (r) => r.direction !== "ingress" && (r.layer3?.local || r.layer4?.sourcePorts),
  );
  for (const rule of model.rules) {
    const section = rule.process ?? rule.interface;
    if (!section) continue;
    const what = rule.process ? "a process" : "an interface";
    if (rule.direction !== "egress") {
      out.push(
        diagnostic(
          section.pos,
          `rule '${rule.name}' names ${what} but is not 'direction: egress': the socket hooks judge connections this host opens; for an incoming connection this version knows neither`,
        ),
      );
    }
    if (!model.attach.cgroup) {
      out.push(
        diagnostic(
          section.pos,
          `rule '${rule.name}' names ${what}: set attach.cgroup (e.g. "/") so the socket hooks see the connections`,
        ),
      );
    }
    if (firstLocal && firstLocal.index < rule.index) {
      out.push(
        diagnostic(
          section.pos,
          `rule '${rule.name}' names ${what} after rule '${firstLocal.name}' (line ${firstLocal.pos.line}), which needs the local address or source port: connect() knows neither, so move it above`,
        ),
      );
    }
    const p = rule.process;
    if (!p) continue;
    const at = (field: string) => ({ ...p.pos, path: `${p.pos.path}${field}` });
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

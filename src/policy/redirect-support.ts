// Which redirects the socket hooks can carry out (docs/redirect.md), checked at load so a redirect
// is never silently ignored: each problem is a diagnostic at the redirect's position. This is what
// the policy text alone decides (connect() facts, attach.cgroup); whether each target is
// reachable from its clients is a question for the host (src/host/redirect-reach.ts).
import { diagnostic, type Diagnostic } from "../config/diagnostics.ts";
import type { PolicyModel } from "../config/model.ts";
import { commRange } from "./compile/process.ts";

const TCP = 6;
const UDP = 17;

export function redirectProblems(model: PolicyModel): Diagnostic[] {
  const out: Diagnostic[] = [];
  for (const r of model.redirects) {
    const refuse = (message: string) =>
      out.push(diagnostic(r.pos, `redirect '${r.name}': ${message}`));
    if (!model.attach.cgroup)
      refuse(`set attach.cgroup (e.g. "/") so the socket hooks see the connections to redirect`);
    if (r.direction === "ingress")
      refuse("redirects act on connections this host opens (connect()): use 'direction: egress'");
    if (r.layer3?.local || r.layer4?.sourcePorts)
      refuse(
        "connect() knows neither the local address nor the source port: match on the remote side, protocol, port, process or interface",
      );
    if (r.layer7) refuse("a redirect is decided at connect(), before any layer 7 data");
    const protocol = r.layer4?.protocol ?? null;
    if (protocol !== null && protocol !== TCP && protocol !== UDP)
      refuse("only tcp and udp connections can be redirected");
    if (r.proxyProtocol && protocol === UDP)
      refuse(
        `proxy_protocol ${r.proxyProtocol} is a header on a tcp stream: the redirect matches udp`,
      );
    for (const name of r.process?.name ?? []) {
      if (!commRange(name))
        refuse(
          `process name '${name}': the kernel matches a name (at most 15 bytes) exactly or by a trailing '*' only`,
        );
    }
  }
  return out;
}

// Redirects for the kernel (docs/redirect.md): which redirect a connection matches is one more
// classifier image (image 2), compiled from the redirects as if they were rules, so the socket
// hooks find it with the same fixed table walk as a rule. Its rule i is redirect i; its defaults
// (past the last redirect) mean "not redirected".
//
// Redirects that name processes or interfaces share the process classes of the policy's rules: the
// classes are computed over the rules followed by the redirects (withRedirects), so one class P
// per connection serves both.

import type { PolicyModel, Redirect, Rule } from "../../config/model.ts";
import type { ClassifierImage } from "./image.ts";

export interface RedirectTarget {
  /** The redirect's name, for events. */
  name: string;
  ip: string;
  family: 4 | 6;
  port: number;
  proxyProtocol?: "v1" | "v2";
  /** When the target (or `via`) does not listen: block the connection or let it through. */
  unavailable: "block" | "allow";
  /** Where the kernel sends connections instead of `to`: moat's relay, which prepends the PROXY
   * header and connects to `to` (set by the daemon, src/redirect/relay.ts). */
  via?: { ip: string; port: number };
  /** The kernel reports nothing when it redirects (moat's DNS proxy reports each query). */
  quiet?: boolean;
  /** Taken only when the rule chosen at connect() is an L7 rule (moat's L7 relay judges it). */
  layer7Only?: boolean;
  /** A loopback target moat serves in every network namespace (its DNS proxy). */
  everyNetns?: boolean;
}

export interface RedirectImage {
  image: ClassifierImage;
  /** By redirect index: where the redirect sends connections (its `to`). */
  targets: RedirectTarget[];
}

/** Redirect `i` as a rule: it "allows" what it matches; its index follows the policy's rules. */
function asRule(model: PolicyModel, r: Redirect, i: number): Rule {
  const rule: Rule = {
    direction: r.direction,
    index: model.rules.length + i,
    name: r.name,
    action: "allow",
    mode: model.mode,
    ownMode: false,
    log: false,
    pos: r.pos,
  };
  if (r.layer3) rule.layer3 = r.layer3;
  if (r.layer4) rule.layer4 = r.layer4;
  if (r.process) rule.process = r.process;
  if (r.interface) rule.interface = r.interface;
  return rule;
}

/** The policy's rules followed by its redirects as rules (for the process classes). */
export function withRedirects(model: PolicyModel): PolicyModel {
  if (model.redirects.length === 0) return model;
  return {
    ...model,
    rules: [...model.rules, ...model.redirects.map((r, i) => asRule(model, r, i))],
  };
}

/** The redirects alone as a policy whose rules are the redirects; nothing else matches. */
export function redirectModel(model: PolicyModel): PolicyModel {
  return {
    ...model,
    rules: model.redirects.map((r, i) => asRule(model, r, i)),
    defaults: { ingress: "allow", egress: "allow" },
  };
}

export function redirectTargets(model: PolicyModel): RedirectTarget[] {
  return model.redirects.map((r) => ({
    name: r.name,
    ip: r.to.ip,
    family: r.to.family,
    port: r.to.port,
    ...(r.proxyProtocol ? { proxyProtocol: r.proxyProtocol } : {}),
    unavailable: r.onUnavailable ?? model.failure.helper,
  }));
}

// Rules moat adds before the policy's own: with `dns: { doh: block }`, `dns:doh` blocks
// connections to set:doh-resolvers on tcp/udp 443 and 853 (DNS over HTTPS, TLS and QUIC)
// (docs/dns.md, "Encrypted DNS"). One transform for the evaluator and the compiler, so `moat
// explain` shows what the kernel does. The name has a colon, which no rule name the policy
// writes can have: it never clashes with the user's.
import type { PolicyModel, PortRange, Rule, SourcePos } from "../config/model.ts";

/** The implicit rule blocking DoH/DoT resolvers; events name it and say `reason: "doh"`. */
export const DOH_RULE = "dns:doh";
/** The set it blocks (the built-in list unless the policy has its own). */
const DOH_SET = "doh-resolvers";
const DOH_PORTS = [443, 853];

const implicit = new WeakMap<PolicyModel, PolicyModel>();

/** The policy as judged: its implicit rules first, the policy's rules after them (reindexed). */
export function withImplicitRules(model: PolicyModel): PolicyModel {
  if (model.dns.doh !== "block") return model;
  const known = implicit.get(model);
  if (known) return known;
  const set = model.sets.get(DOH_SET);
  // config reads the list whenever doh is block; an unreadable list refused the policy
  if (!set || set.kind === "port") return model;
  const pos: SourcePos = model.dns.pos ?? { file: model.file, line: 1, col: 1, path: "dns" };
  const ports: PortRange[] = DOH_PORTS.map((p) => ({ lo: p, hi: p, text: String(p), pos }));
  const doh: Rule = {
    index: 0,
    name: DOH_RULE,
    direction: "egress",
    action: "block",
    mode: model.mode,
    ownMode: false,
    log: false,
    pos,
    layer3: {
      remote: {
        entries: [
          {
            kind: "set",
            set: DOH_SET,
            text: `set:${DOH_SET}`,
            negate: false,
            pos,
            entries: set.entries,
          },
        ],
        pos,
      },
      pos,
    },
    layer4: { protocol: null, ports, pos },
  };
  const out: PolicyModel = {
    ...model,
    rules: [doh, ...model.rules.map((r) => ({ ...r, index: r.index + 1 }))],
  };
  implicit.set(model, out);
  return out;
}

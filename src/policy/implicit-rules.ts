// Rules moat adds to the policy's own:
// - with `dns: { doh: block }`, `dns:doh` blocks connections to set:doh-resolvers on tcp/udp 443
//   and 853 (DNS over HTTPS, TLS and QUIC) before every rule (docs/dns.md, "Encrypted DNS");
// - before each egress rule judging HTTP or TLS (layer7.http, layer7.tls), `l7:quic` blocks UDP
//   (QUIC) on the rule's own ports (every port but 53 without a port list) for the same
//   processes, interfaces and addresses: moat's relay reads TCP only, and a client refused QUIC
//   at once falls back to TCP (docs/l7-quic.md).
// - moat's local decisions (`decision:<id>`, src/policy/decision-rules.ts) after `dns:doh` and
//   before the policy's rules.
// One transform for the evaluator and the compiler, so `moat explain` shows what the kernel does.
// The names have a colon, which no rule name the policy writes can have: they never clash with
// the user's.
import type { PolicyModel, PortRange, Rule, SourcePos } from "../config/model.ts";
import { decisionRules } from "./decision-rules.ts";
import { perRules } from "./per-model.ts";

/** The implicit rule blocking DoH/DoT resolvers; events name it and say `reason: "doh"`. */
export const DOH_RULE = "dns:doh";
/** The set it blocks (the built-in list unless the policy has its own). */
const DOH_SET = "doh-resolvers";
const DOH_PORTS = [443, 853];

/** The implicit rule blocking QUIC where L7 web rules apply; events say `reason: "quic"`. */
export const QUIC_RULE = "l7:quic";
const UDP = 17;
/** DNS stays with the DNS proxy and the policy's own rules: QUIC does not run there. */
const DNS_PORT = 53;

/**
 * The policy as judged: `dns:doh` first, the local decisions, `l7:quic` before each L7 web
 * rule, the policy's rules in their order (reindexed).
 */
export const withImplicitRules = perRules((model: PolicyModel): PolicyModel => {
  const doh = dohRule(model);
  const quic = model.rules.map((r) => quicRule(model, r));
  const decisions = decisionRules(model);
  // a policy without implicit rules is remembered too: it is judged as it is, and working that
  // out walks every rule (for each DNS query and relayed connection judged by it)
  if (!doh && decisions.length === 0 && !quic.some((q) => q)) return model;
  const rules = [
    ...(doh ? [doh] : []),
    ...decisions,
    ...model.rules.flatMap((r, i) => (quic[i] ? [quic[i], r] : [r])),
  ].map((r, index) => ({ ...r, index }));
  return { ...model, rules };
});

/**
 * `l7:quic` for a rule judging HTTP or TLS: UDP on the rule's ports blocked for its process (without one: the processes under attach.cgroup, whose connections the relay sees),
 * interface and layer3 (hostnames too: the names machinery carries them), in the rule's mode.
 */
function quicRule(model: PolicyModel, r: Rule): Rule | undefined {
  if (!r.layer7?.http && !r.layer7?.tls) return undefined;
  if (r.direction === "ingress") return undefined;
  const l4 = r.layer4;
  if (l4?.protocol != null && l4.protocol !== 6 && l4.protocol !== UDP) return undefined;
  const pos = r.layer7.pos;
  const cgroup = model.attach.cgroup;
  const process = r.process ?? (cgroup ? { cgroup: [cgroup.value], pos } : undefined);
  // QUIC runs on any port: the same ports as the TCP the relay judges
  const ports: PortRange[] = l4?.ports
    ? l4.ports.map((p) => ({ ...p }))
    : [
        { lo: 1, hi: DNS_PORT - 1, text: `1-${DNS_PORT - 1}`, pos },
        { lo: DNS_PORT + 1, hi: 65535, text: `${DNS_PORT + 1}-65535`, pos },
      ];
  return {
    index: 0,
    name: QUIC_RULE,
    direction: "egress",
    action: "block",
    mode: r.mode,
    ownMode: r.ownMode,
    log: false,
    pos,
    ...(r.layer3 ? { layer3: r.layer3 } : {}),
    layer4: { protocol: UDP, ports, pos },
    ...(process ? { process } : {}),
    ...(r.interface ? { interface: r.interface } : {}),
  };
}

/** `dns:doh` when the policy says `dns: { doh: block }`. */
function dohRule(model: PolicyModel): Rule | undefined {
  if (model.dns.doh !== "block") return undefined;
  const set = model.sets.get(DOH_SET);
  // config reads the list whenever doh is block; an unreadable list refused the policy
  if (!set || set.kind === "port") return undefined;
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
  return doh;
}

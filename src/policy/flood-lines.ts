// What `flood` does to a connection, in words for `moat explain` (docs/policy.md, "flood"): the
// SYN flood defence of its port, the amplification limit of UDP from its remote's port. Both act
// before the rules: these lines come with the rules' verdict, they do not change it.
import type { PolicyModel } from "../config/model.ts";
import type { ConnectionFacts } from "./facts.ts";
import { describeRateLimit } from "./rate-limit.ts";

export function floodLines(model: PolicyModel, facts: ConnectionFacts): string[] {
  if (facts.direction !== "ingress") return [];
  const out: string[] = [];
  const syn = model.synFlood;
  const port = facts.local.port;
  if (syn && facts.protocol === "tcp" && port !== undefined) {
    if (!syn.ports.length || syn.ports.includes(port)) {
      const which = syn.ports.length ? `port ${port}` : "every port (one count)";
      const then =
        syn.mode === "prevent"
          ? "moat answers its SYNs with SYN cookies, the listener never sees the flood"
          : "reported; the kernel answers its SYNs (detect)";
      out.push(
        `syn flood: ${which} is under attack above ${syn.rate} SYNs/s (burst ${syn.burst}), until ${syn.holdSeconds} s without; then ${then}`,
      );
    }
  }
  const amp = model.udpAmplification;
  const from = facts.remote.port;
  if (amp && facts.protocol === "udp" && from !== undefined && amp.ports.includes(from)) {
    const limit = describeRateLimit({ ...amp.limit, perPort: false }, amp.mode);
    out.push(`udp amplification: from port ${from}, ${limit}, counted per source port`);
  }
  const icmp = model.icmpFlood;
  if (icmp && (facts.protocol === "icmp" || facts.protocol === "icmpv6")) {
    const over = icmp.mode === "prevent" ? "dropped" : "reported, not dropped (detect)";
    out.push(`icmp: packets longer than ${icmp.maxSize} bytes are ${over}`);
  }
  return out;
}

// One egress connection by curl (uid 1000) from 10.0.0.1 to an IPv4 address that DNS answers gave
// names, judged two ways: by the compiled images as the socket hooks walk them, and by the
// reference evaluator. Tests of name rules compare the two.
import { evaluate, type Decision } from "../../src/policy/index.ts";
import { lookupImage } from "../../src/policy/compile/lookup.ts";
import { processClass } from "../../src/policy/compile/process.ts";
import type { PolicyImage } from "../../src/policy/compile/kernel-image.ts";
import type { PolicyModel } from "../../src/config/model.ts";
import { egressFacts } from "./egress-facts.ts";

export { v4 } from "./egress-facts.ts";

export interface NamedConnection {
  ip: string;
  port: number;
  protocol: "tcp" | "udp";
  /** The names DNS answers bound to `ip` for the caller. */
  names: string[];
}

/** The socket hooks' decision: image 1 with the process class, then image 3 with the name class. */
export function socketRule(img: PolicyImage, c: NamedConnection): number {
  const socket = img.socket ?? { image: img.packet, process: null };
  const p = socket.process
    ? processClass(socket.process, { dev: 1, ino: 2n, comm: "curl", uid: 1000, cgroupId: 9n })
    : 40000;
  const facts = egressFacts(c, p);
  const r1 = lookupImage(socket.image, facts);
  if (!img.names) return r1;
  const n = img.names.classes.classOf(c.names);
  if (n === 0) return r1;
  const names = img.names.image;
  const r3 = lookupImage(names, { ...facts, remote: Uint8Array.from([0, 0, n >> 8, n & 255]) });
  return r3 < names.ruleCount ? Math.min(r1, r3) : r1;
}

/** The reference evaluator's decision for the same connection. */
export function judgeNamed(model: PolicyModel, c: NamedConnection): Decision {
  return evaluate(model, {
    direction: "egress",
    family: 4,
    protocol: c.protocol,
    local: { ip: "10.0.0.1", port: 40000 },
    remote: { ip: c.ip, port: c.port, names: c.names },
    process: {
      pid: 1,
      name: "curl",
      path: "/usr/bin/curl",
      user: 1000,
      cgroup: "/",
      container: null,
    },
  }) as Decision;
}

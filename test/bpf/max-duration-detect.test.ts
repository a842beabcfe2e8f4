// max_duration in detect mode, through BPF_PROG_TEST_RUN: a connection past its deadline is
// not cut or rewritten at any hook; it is reported once as `detected` with reason max_duration,
// and a reload does not report it again. The rule's own mode decides over the policy's.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { KernelLab, type HookName } from "../helpers/kernel-lab.ts";
import { packet, tcpEnds, type PacketSpec } from "../helpers/packets.ts";
import { writeConntrack, type ConntrackEntry } from "../../src/datapath/conntrack.ts";
import { CtFlag } from "../../src/datapath/abi.ts";

const H = "10.0.0.1";
const P = "198.51.100.1";

const policy = (mode: "detect" | "prevent", ruleMode?: "detect" | "prevent") => `
version: 1
mode: ${mode}
defaults: { ingress: block, egress: allow }
rules:
  - name: ssh-8h
    direction: ingress
    action: allow${ruleMode ? `\n    mode: ${ruleMode}` : ""}
    layer4: { protocol: tcp, port: [22], max_duration: 8h }
`;

function entry(lab: KernelLab, lport: number): ConntrackEntry {
  const found = [...lab.dp.conntrack()].find((e) => e.local.port === lport);
  assert.ok(found, "conntrack entry");
  return found;
}

/** Puts the connection's deadline in the past. */
function expire(lab: KernelLab, lport: number): void {
  const e = entry(lab, lport);
  assert.ok(e.deadlineNs > 0n, "a deadline was set");
  e.value.deadline_ns = 1n;
  writeConntrack(lab.dp.conntrackMap, e);
}

/** An inbound connection from P:sport to H:22: the peer's segments (ingress), the host's (tc). */
const { peer, host } = tcpEnds(P, H, 22);

/** The segment passes as it came: not dropped, not turned into a probe or a reset. */
function untouched(lab: KernelLab, hook: HookName, spec: PacketSpec, what: string): void {
  const r = lab.run(hook, spec);
  assert.equal(r.verdict, "pass", `${what}: passes`);
  assert.deepEqual(r.data, packet(spec), `${what}: unchanged`);
}

/** Opens the connection (handshake, some data) and puts its deadline in the past. */
function openAndExpire(lab: KernelLab, ingress: HookName, sport: number): void {
  assert.equal(lab.run(ingress, peer(sport, "S", { seq: 1000 })).verdict, "pass");
  assert.equal(lab.run("tc", host(sport, "SA", { seq: 5000, ack: 1001 })).verdict, "pass");
  assert.equal(lab.run(ingress, peer(sport, "A", { seq: 1001, ack: 5001 })).verdict, "pass");
  untouched(lab, ingress, peer(sport, "PA", { seq: 1001, ack: 5001, payload: 10 }), "data");
  expire(lab, 22);
  lab.events();
}

const reported = (lab: KernelLab) => lab.events().map((e) => `${e.type} ${e.reason} ${e.rule}`);

for (const [what, yaml] of [
  ["a detect policy", policy("detect")],
  ["a detect rule under a prevent policy", policy("prevent", "detect")],
] as const)
  describe(`max_duration under ${what}`, () => {
    let lab: KernelLab;
    before(() => (lab = KernelLab.withPolicy(yaml)));
    after(() => lab.close());

    for (const ingress of ["xdp", "tc-ingress"] as const)
      test(`the peer's packet past the deadline passes unchanged, reported once (${ingress})`, () => {
        lab.forget();
        const sport = 41200;
        openAndExpire(lab, ingress, sport);
        const before = lab.counters();
        const late = peer(sport, "PA", { seq: 1011, ack: 5001, payload: 100 });
        untouched(lab, ingress, late, "past the deadline");
        const events = lab.events();
        assert.deepEqual(
          events.map((e) => `${e.type} ${e.reason} ${e.rule} ${e.mode}`),
          ["detected max_duration ssh-8h detect"],
        );
        assert.equal(events[0]?.verdict, "allowed", "the connection stays allowed");
        assert.equal(events[0]?.direction, "ingress");
        untouched(lab, ingress, peer(sport, "PA", { seq: 1111, ack: 5001, payload: 50 }), "later");
        untouched(lab, "tc", host(sport, "PA", { seq: 5001, ack: 1161, payload: 20 }), "reply");
        assert.deepEqual(reported(lab), [], "reported once");
        assert.deepEqual(KernelLab.delta(before, lab.counters(), ["cut", "reset"]), {
          cut: 0,
          reset: 0,
        });
        const e = entry(lab, 22);
        assert.equal(e.tcpState, "established", "not closed");
        assert.equal(e.flags & CtFlag.cut, 0, "not cut");
        // its close is reported, as for a connection whose opening was
        untouched(lab, ingress, peer(sport, "FA", { seq: 1161, ack: 5021 }), "fin");
        untouched(lab, "tc", host(sport, "FA", { seq: 5021, ack: 1162 }), "fin back");
        assert.deepEqual(reported(lab), ["closed fin ssh-8h"]);
      });

    test("this host's packet past the deadline leaves unchanged, reported once (tc)", () => {
      lab.forget();
      const sport = 41300;
      openAndExpire(lab, "xdp", sport);
      untouched(lab, "tc", host(sport, "PA", { seq: 5001, ack: 1011, payload: 20 }), "reply");
      assert.deepEqual(reported(lab), ["detected max_duration ssh-8h"]);
      untouched(lab, "tc", host(sport, "PA", { seq: 5021, ack: 1011, payload: 20 }), "more");
      assert.deepEqual(reported(lab), [], "reported once");
    });

    test("a reload judges it again without reporting it again", () => {
      lab.forget();
      const sport = 41400;
      openAndExpire(lab, "xdp", sport);
      untouched(lab, "xdp", peer(sport, "PA", { seq: 1011, ack: 5001, payload: 10 }), "late");
      assert.deepEqual(reported(lab), ["detected max_duration ssh-8h"]);
      lab.policy(yaml, { keepConntrack: true });
      untouched(lab, "xdp", peer(sport, "PA", { seq: 1021, ack: 5001, payload: 10 }), "reloaded");
      untouched(lab, "tc", host(sport, "PA", { seq: 5001, ack: 1031, payload: 10 }), "reply");
      assert.deepEqual(reported(lab), [], "reported once");
    });
  });

describe("max_duration of a prevent rule under a detect policy", () => {
  let lab: KernelLab;
  before(() => (lab = KernelLab.withPolicy(policy("detect", "prevent"))));
  after(() => lab.close());

  test("the connection is cut: the rule's own mode decides", () => {
    const sport = 41500;
    openAndExpire(lab, "xdp", sport);
    const before = lab.counters();
    const r = lab.run("xdp", peer(sport, "PA", { seq: 1011, ack: 5001, payload: 100 }));
    assert.equal(r.verdict, "pass");
    assert.notDeepEqual(r.data, packet(peer(sport, "PA", { seq: 1011, ack: 5001, payload: 100 })));
    assert.deepEqual(reported(lab), ["closed max_duration ssh-8h"]);
    assert.deepEqual(KernelLab.delta(before, lab.counters(), ["cut"]), { cut: 1 });
  });
});

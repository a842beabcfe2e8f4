// The xmas check through BPF_PROG_TEST_RUN: FIN+PSH+URG without ACK (a scan) is dropped, but
// with ACK it is what Linux sends when a socket shuts down right after urgent data (the FIN rides
// the last urgent segment), and passes.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { KernelLab } from "../helpers/kernel-lab.ts";
import type { PacketSpec } from "../helpers/packets.ts";

const PREVENT = `
version: 1
mode: prevent
defaults: { ingress: allow, egress: allow }
`;

describe("invalid tcp flags: FIN+PSH+URG", () => {
  let lab: KernelLab;
  before(() => {
    lab = new KernelLab({ globals: { limit_test_clock: 1 } });
    lab.policy(PREVENT);
  });
  after(() => lab.close());

  let sport = 31000;
  const segment = (src: string, flags: string): PacketSpec => ({
    src,
    dst: src.includes(":") ? "fd00:2::1" : "10.0.0.1",
    proto: "tcp",
    sport: sport++,
    dport: 80,
    flags,
  });

  for (const src of ["198.51.100.62", "2001:db8:62::1"]) {
    test(`from ${src}: with ACK (urgent data, then shutdown) passes, not counted`, () => {
      const before = lab.counters();
      assert.equal(lab.run("xdp", segment(src, "FPUA")).verdict, "pass");
      assert.equal(KernelLab.delta(before, lab.counters(), ["tcpFlagsDropped"]).tcpFlagsDropped, 0);
    });

    test(`from ${src}: without ACK (an xmas scan) is dropped, counted`, () => {
      const before = lab.counters();
      assert.equal(lab.run("xdp", segment(src, "FPU")).verdict, "drop");
      assert.equal(KernelLab.delta(before, lab.counters(), ["tcpFlagsDropped"]).tcpFlagsDropped, 1);
    });
  }
});

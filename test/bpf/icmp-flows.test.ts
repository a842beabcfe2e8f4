// ICMP query/response flows in conntrack under a strict ingress default: a query this host sends
// lets in only the responder's response, never a query from the responder (echo with the same
// id, a timestamp or node information query of the same type); ICMP errors pass with the flow
// they quote only when they quote a packet this host sent. Through BPF_PROG_TEST_RUN.
import { after, before, beforeEach, describe, test } from "node:test";
import assert from "node:assert/strict";
import { KernelLab } from "../helpers/kernel-lab.ts";
import { packet, type PacketSpec } from "../helpers/packets.ts";

const POLICY = `
version: 1
mode: prevent
defaults: { ingress: block, egress: allow }
rules:
  - name: web-in
    direction: ingress
    action: allow
    layer4: { protocol: tcp, port: [80] }
`;

const FAMILIES = [
  // family, host, responder, another host, protocol, echo request/reply, query/response
  {
    fam: "v4",
    h: "10.0.0.1",
    r: "198.51.100.66",
    x: "203.0.113.9",
    proto: "icmp",
    echo: [8, 0],
    query: [13, 14],
  },
  {
    fam: "v6",
    h: "fd00:2::1",
    r: "2001:db8::66",
    x: "2001:db8::99",
    proto: "icmpv6",
    echo: [128, 129],
    query: [139, 140],
  },
] as const;

describe("icmp flows", () => {
  let lab: KernelLab;
  before(() => {
    lab = new KernelLab();
    lab.policy(POLICY);
  });
  beforeEach(() => lab.dp.clearConntrack());
  after(() => lab.close());

  for (const { fam, h, r, x, proto, echo, query } of FAMILIES) {
    const icmp = (
      src: string,
      dst: string,
      type: number,
      id?: number,
      seq?: number,
    ): PacketSpec => ({
      src,
      dst,
      proto,
      icmp: { type, ...(id === undefined ? {} : { id }), ...(seq === undefined ? {} : { seq }) },
    });

    test(`${fam}: after this host's ping, the reply passes and a request from the responder is judged as new`, () => {
      assert.equal(lab.run("tc", icmp(h, r, echo[0], 0x777)).verdict, "pass");
      assert.equal(lab.run("xdp", icmp(r, h, echo[1], 0x777)).verdict, "pass", "reply");
      assert.equal(lab.run("xdp", icmp(r, h, echo[0], 0x777, 9)).verdict, "drop", "request");
      assert.equal(lab.run("tc-ingress", icmp(r, h, echo[0], 0x777, 9)).verdict, "drop");
      assert.equal(lab.run("xdp", icmp(x, h, echo[1], 0x777)).verdict, "drop", "another host");
      assert.equal(lab.run("xdp", icmp(r, h, echo[1], 0x777, 2)).verdict, "pass", "still");
    });

    test(`${fam}: a query (type ${query[0]}) lets in its response (${query[1]}), not the same query back`, () => {
      assert.equal(lab.run("tc", icmp(h, r, query[0])).verdict, "pass");
      assert.equal(lab.run("xdp", icmp(r, h, query[0])).verdict, "drop", "the query back");
      assert.equal(lab.run("xdp", icmp(r, h, query[1])).verdict, "pass", "the response");
    });

    test(`${fam}: an error quoting this host's ping passes; one quoting a packet it never sent does not`, () => {
      assert.equal(lab.run("tc", icmp(h, r, echo[0], 0x123)).verdict, "pass");
      const quote = (src: string, dst: string) =>
        packet({ ...icmp(src, dst, echo[0], 0x123), l3Only: true });
      const [type, code] = fam === "v4" ? [11, 0] : [3, 0];
      const err = (src: string, inner: Buffer) =>
        lab.run("xdp", { src, dst: h, proto, icmp: { type, code, id: 0, seq: 0 }, payload: inner })
          .verdict;
      assert.equal(err(x, quote(h, r)), "pass", "time exceeded from a router on the path");
      assert.equal(err(x, quote(r, h)), "drop", "the reversed tuple");
    });

    test(`${fam}: an error quoting the reversed tuple of a tracked tcp connection is dropped`, () => {
      const c: PacketSpec = { src: h, dst: r, proto: "tcp", sport: 40000, dport: 443 };
      assert.equal(lab.run("tc", c).verdict, "pass");
      const quote = (spec: PacketSpec) =>
        packet({ ...spec, l3Only: true }).subarray(0, fam === "v4" ? 28 : 48);
      const unreach = fam === "v4" ? 3 : 1;
      const err = (inner: Buffer) =>
        lab.run("xdp", {
          src: x,
          dst: h,
          proto,
          icmp: { type: unreach, code: 1, id: 0, seq: 0 },
          payload: inner,
        }).verdict;
      assert.equal(err(quote(c)), "pass");
      assert.equal(err(quote({ ...c, src: r, dst: h, sport: 443, dport: 40000 })), "drop");
    });
  }
});

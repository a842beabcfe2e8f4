// scrub.mss through BPF_PROG_TEST_RUN: the MSS option of a SYN or SYN-ACK above the policy's clamp
// is lowered, at XDP (arriving) and TC (leaving), IPv4 and IPv6, at an even or an odd offset in
// the options; the TCP checksum stays right; other packets and smaller MSS values are untouched.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { KernelLab, type HookName } from "../helpers/kernel-lab.ts";
import { checksum, packet, type PacketSpec } from "../helpers/packets.ts";
import { parseAddress } from "../../src/datapath/address.ts";

const POLICY = `
version: 1
mode: prevent
defaults: { ingress: allow, egress: allow }
scrub: { mss: { ipv4: 1200, ipv6: 1100 } }
`;

const mssOption = (mss: number) => Buffer.from([2, 4, mss >> 8, mss & 0xff]);
/** NOP first: the MSS value lands at an odd offset of the TCP header */
const oddOptions = (mss: number) =>
  Buffer.concat([Buffer.from([1]), mssOption(mss), Buffer.from([1, 1, 1])]);
const evenOptions = (mss: number) => Buffer.concat([mssOption(mss), Buffer.from([1, 1, 4, 2])]); // + SACK permitted

/** The TCP header's offset in an Ethernet frame (no VLAN, no extension headers). */
const tcpAt = (frame: Buffer) => (frame.readUInt16BE(12) === 0x0800 ? 14 + 20 : 14 + 40);

function mssOf(frame: Buffer): number | undefined {
  const tcp = tcpAt(frame);
  const end = tcp + (frame[tcp + 12]! >> 4) * 4;
  for (let i = tcp + 20; i < end;) {
    const kind = frame[i]!;
    if (kind === 0) return undefined;
    if (kind === 1) {
      i++;
      continue;
    }
    if (kind === 2) return frame.readUInt16BE(i + 2);
    i += frame[i + 1]!;
  }
  return undefined;
}

/** Whether the TCP checksum of the frame is right. */
function checksumOk(frame: Buffer, spec: PacketSpec): boolean {
  const tcp = frame.subarray(tcpAt(frame));
  const src = parseAddress(spec.src);
  const dst = parseAddress(spec.dst);
  const pseudo = Buffer.alloc(src.length === 4 ? 12 : 40);
  if (src.length === 4) {
    src.copy(pseudo, 0);
    dst.copy(pseudo, 4);
    pseudo[9] = 6;
    pseudo.writeUInt16BE(tcp.length, 10);
  } else {
    src.copy(pseudo, 0);
    dst.copy(pseudo, 16);
    pseudo.writeUInt32BE(tcp.length, 32);
    pseudo[39] = 6;
  }
  return checksum(pseudo, tcp) === 0;
}

describe("scrub.mss", () => {
  let lab: KernelLab;
  before(() => {
    lab = new KernelLab();
    lab.policy(POLICY);
  });
  after(() => lab.close());

  const cases: { what: string; hook: HookName; v6: boolean; options: Buffer; flags: string }[] = [
    {
      what: "arriving SYN, v4, even offset",
      hook: "xdp",
      v6: false,
      options: evenOptions(1460),
      flags: "S",
    },
    {
      what: "arriving SYN, v4, odd offset",
      hook: "xdp",
      v6: false,
      options: oddOptions(1460),
      flags: "S",
    },
    {
      what: "arriving SYN-ACK, v6, odd offset",
      hook: "xdp",
      v6: true,
      options: oddOptions(1440),
      flags: "SA",
    },
    {
      what: "arriving SYN at tc ingress, v6, even offset",
      hook: "tc-ingress",
      v6: true,
      options: evenOptions(8940),
      flags: "S",
    },
    {
      what: "leaving SYN, v4, odd offset",
      hook: "tc",
      v6: false,
      options: oddOptions(65495),
      flags: "S",
    },
    {
      what: "leaving SYN-ACK, v6, even offset",
      hook: "tc",
      v6: true,
      options: evenOptions(1440),
      flags: "SA",
    },
  ];
  for (const c of cases) {
    test(`${c.what}: lowered to the clamp, checksum right`, () => {
      const [local, remote] = c.v6 ? ["fd00:2::1", "2001:db8::5"] : ["10.0.0.1", "198.51.100.5"];
      const leaving = c.hook === "tc";
      const spec: PacketSpec = {
        src: leaving ? local : remote,
        dst: leaving ? remote : local,
        proto: "tcp",
        sport: leaving ? 40000 : 40001,
        dport: 443,
        flags: c.flags,
        tcpOptions: c.options,
      };
      lab.dp.clearConntrack();
      const before = lab.counters();
      const r = lab.run(c.hook, packet(spec));
      assert.equal(r.verdict, "pass");
      assert.equal(mssOf(r.data), c.v6 ? 1100 : 1200);
      assert.ok(checksumOk(r.data, spec), "the TCP checksum verifies");
      assert.deepEqual(KernelLab.delta(before, lab.counters(), ["mssClamped"]), { mssClamped: 1 });
    });
  }

  test("an MSS at or under the clamp, a packet without SYN, a SYN without MSS: untouched", () => {
    const base: PacketSpec = { src: "198.51.100.6", dst: "10.0.0.1", proto: "tcp", dport: 443 };
    for (const spec of [
      { ...base, tcpOptions: evenOptions(1200) },
      { ...base, sport: 40100, flags: "A", tcpOptions: evenOptions(1460) },
      { ...base, sport: 40101, tcpOptions: Buffer.from([1, 1, 4, 2]) },
    ]) {
      lab.dp.clearConntrack();
      const frame = packet(spec);
      const r = lab.run("xdp", frame);
      assert.deepEqual(r.data, frame, JSON.stringify(spec.tcpOptions));
    }
  });

  test("a policy without scrub.mss leaves every MSS alone", () => {
    lab.policy(POLICY.replace("scrub: { mss: { ipv4: 1200, ipv6: 1100 } }\n", ""));
    const frame = packet({
      src: "198.51.100.7",
      dst: "10.0.0.1",
      proto: "tcp",
      dport: 443,
      tcpOptions: evenOptions(1460),
    });
    assert.deepEqual(lab.run("xdp", frame).data, frame);
    lab.policy(POLICY);
  });
});

// scrub's IP header normalisation through BPF_PROG_TEST_RUN: a TTL / hop limit under min_ttl is
// raised, at XDP, TC ingress and TC egress, IPv4 and IPv6; clear_df clears IPv4's DF both ways;
// random_ip_id replaces the id of IPv4 packets leaving, never of fragments or of packets
// arriving; the IPv4 header checksum stays right; without a scrub section nothing changes.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { KernelLab, type HookName } from "../helpers/kernel-lab.ts";
import { checksum, packet, type PacketSpec } from "../helpers/packets.ts";

const POLICY = (scrub: string) => `
version: 1
mode: prevent
defaults: { ingress: allow, egress: allow }
${scrub}
`;

const IP = 14; // the IP header's offset: Ethernet, no VLAN

const v4 = (frame: Buffer) => ({
  ttl: frame[IP + 8]!,
  id: frame.readUInt16BE(IP + 4),
  df: (frame.readUInt16BE(IP + 6) & 0x4000) !== 0,
  checksumOk: checksum(frame.subarray(IP, IP + 20)) === 0,
});

const hopLimit = (frame: Buffer) => frame[IP + 7]!;

function spec(hook: HookName, v6: boolean, extra: Partial<PacketSpec> = {}): PacketSpec {
  const [local, remote] = v6 ? ["fd00:2::1", "2001:db8::5"] : ["10.0.0.1", "198.51.100.5"];
  const leaving = hook === "tc";
  return {
    src: leaving ? local : remote,
    dst: leaving ? remote : local,
    proto: "udp",
    sport: 40000 + Math.floor(Math.random() * 20000),
    dport: 53,
    payload: 8,
    ...extra,
  };
}

describe("scrub: min_ttl, clear_df, random_ip_id", () => {
  let lab: KernelLab;
  before(() => {
    lab = new KernelLab();
    lab.policy(POLICY("scrub: { min_ttl: 64, clear_df: true, random_ip_id: true }"));
  });
  after(() => lab.close());

  for (const hook of ["xdp", "tc-ingress", "tc"] as const) {
    test(`${hook}: a TTL of 3 becomes 64, DF is cleared, the header checksum verifies`, () => {
      const before = lab.counters();
      const r = lab.run(hook, packet(spec(hook, false, { ttl: 3, df: true })));
      assert.equal(r.verdict, "pass");
      const ip = v4(r.data);
      assert.equal(ip.ttl, 64);
      assert.equal(ip.df, false);
      assert.ok(ip.checksumOk, "the IPv4 header checksum verifies");
      const moved = KernelLab.delta(before, lab.counters(), ["ttlRaised", "dfCleared"]);
      assert.deepEqual(moved, { ttlRaised: 1, dfCleared: 1 });
    });

    test(`${hook}: an IPv6 hop limit of 2 becomes 64; one of 200 stays`, () => {
      assert.equal(hopLimit(lab.run(hook, packet(spec(hook, true, { ttl: 2 }))).data), 64);
      assert.equal(hopLimit(lab.run(hook, packet(spec(hook, true, { ttl: 200 }))).data), 200);
    });
  }

  test("the id of IPv4 packets leaving is random; arriving packets and fragments keep theirs", () => {
    const ids = new Set<number>();
    for (let i = 0; i < 16; i++) {
      const r = lab.run("tc", packet(spec("tc", false, { ttl: 128 })));
      const ip = v4(r.data);
      assert.ok(ip.checksumOk, "the IPv4 header checksum verifies");
      ids.add(ip.id);
    }
    // 16 draws of 16 bits: all equal to the sent 0x4242 only if nothing was replaced
    assert.ok(ids.size > 8, `ids leaving: ${[...ids].join(", ")}`);
    const arriving = lab.run("xdp", packet(spec("xdp", false, { ttl: 128 })));
    assert.equal(v4(arriving.data).id, 0x4242);
    const fragment = lab.run(
      "tc",
      packet(spec("tc", false, { ttl: 128, frag: { offset: 0, more: true, id: 0x1234 } })),
    );
    assert.equal(v4(fragment.data).id, 0x1234);
  });
});

describe("scrub without the IP header settings", () => {
  let lab: KernelLab;
  before(() => {
    lab = new KernelLab();
    lab.policy(POLICY("scrub: { mss: 1400 }"));
  });
  after(() => lab.close());

  test("TTL, DF and id pass as they came", () => {
    for (const hook of ["xdp", "tc"] as const) {
      const sent = packet(spec(hook, false, { ttl: 3, df: true }));
      const r = lab.run(hook, sent);
      assert.equal(r.verdict, "pass");
      assert.deepEqual(r.data, sent);
    }
  });
});

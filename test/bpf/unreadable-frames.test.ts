// Frames moat cannot read (malformed, cut-short first fragments) under policies that mix modes: a
// prevent-mode block rule is never bypassed by one, in a detect policy or behind a detect
// default; a policy with nothing in prevent never drops one. Long IPv6 extension-header chains
// are walked, not given up on. Through BPF_PROG_TEST_RUN (linear frames; tc-nonlinear.test.ts
// has the skb whose headers are past its linear part), and once through a namespace whose kernel
// reassembles what moat passes.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { KernelLab } from "../helpers/kernel-lab.ts";
import { eventLine } from "../helpers/fixtures.ts";
import { packet, type PacketSpec } from "../helpers/packets.ts";
import { createLab, sh, type Lab } from "../helpers/netns.ts";
import { spawnLines } from "../helpers/child.ts";
import { inNamespace, ROOT } from "../helpers/paths.ts";
import { untilTrue } from "../helpers/until.ts";

const H = "10.0.0.1";
const R = "198.51.100.66";
const H6 = "fd00:2::1";
const R6 = "2001:db8::66";

const MIXED = `
version: 1
mode: detect
defaults: { ingress: allow, egress: allow }
rules:
  - name: no-ssh
    direction: ingress
    action: block
    mode: prevent
    layer4: { protocol: tcp, port: [22] }
`;
const DETECT = `
version: 1
mode: detect
defaults: { ingress: block, egress: block }
rules:
  - name: no-ssh
    direction: ingress
    action: block
    layer4: { protocol: tcp, port: [22] }
  - name: web
    direction: ingress
    action: allow
    mode: prevent
    layer4: { protocol: tcp, port: [80] }
`;
const EGRESS_ONLY = `
version: 1
mode: detect
defaults: { ingress: allow, egress: allow }
rules:
  - name: no-smtp-out
    direction: egress
    action: block
    mode: prevent
    layer4: { protocol: tcp, port: [25] }
`;

const syn = (src: string, dst: string, dport: number, extra: Partial<PacketSpec> = {}) =>
  ({ src, dst, proto: "tcp", sport: 41000, dport, ...extra }) as PacketSpec;

const dstopts = (n: number) => Array.from({ length: n }, () => ({ type: 60 as const }));

/** A SYN behind one destination-options header of `len` bytes (unknown options, skipped). */
function bigDstOpts(dport: number, len = 616): Buffer {
  const base = packet(syn(R6, H6, dport));
  const tcp = base.subarray(54);
  const opts = Buffer.alloc(len);
  opts[0] = 6;
  opts[1] = len / 8 - 1;
  // unknown options (type 0x11: skip) of 200 bytes, then one to fill the rest
  let at = 2;
  while (len - at > 202 + 8) {
    opts[at] = 0x11;
    opts[at + 1] = 200;
    at += 202;
  }
  opts[at] = 0x11;
  opts[at + 1] = len - at - 2;
  const ip = Buffer.from(base.subarray(14, 54));
  ip[6] = 60;
  ip.writeUInt16BE(len + tcp.length, 4);
  return Buffer.concat([base.subarray(0, 14), ip, opts, tcp]);
}

/** An IPv4 SYN split after `first` bytes of TCP: the first fragment (MF) and the rest. */
function splitSyn(
  dport: number,
  first = 8,
  id = 0x5151,
  spec: Partial<PacketSpec> = {},
): [Buffer, Buffer] {
  const whole = packet({ ...syn(R, H, dport), ...spec });
  const ip = whole.subarray(14);
  const l4 = ip.subarray(20);
  const mk = (offset8: number, more: boolean, body: Buffer) => {
    const h = Buffer.from(ip.subarray(0, 20));
    h.writeUInt16BE(20 + body.length, 2);
    h.writeUInt16BE(id, 4);
    h.writeUInt16BE((more ? 0x2000 : 0) | offset8, 6);
    h.writeUInt16BE(0, 10);
    let s = 0;
    for (let i = 0; i < 20; i += 2) s += h.readUInt16BE(i);
    while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
    h.writeUInt16BE(~s & 0xffff, 10);
    return Buffer.concat([whole.subarray(0, 14), h, body]);
  };
  return [mk(0, true, l4.subarray(0, first)), mk(first / 8, false, l4.subarray(first))];
}

/** An IPv6 SYN split after 8 bytes of TCP (fragment header, then the rest). */
function splitSyn6(dport: number, id = 0xabcd): [Buffer, Buffer] {
  const w = packet(syn(R6, H6, dport));
  const t = w.subarray(54);
  const mk = (off8: number, more: boolean, body: Buffer) => {
    const h = Buffer.from(w.subarray(14, 54));
    h[6] = 44;
    h.writeUInt16BE(8 + body.length, 4);
    const fh = Buffer.alloc(8);
    fh[0] = 6;
    fh.writeUInt16BE((off8 << 3) | (more ? 1 : 0), 2);
    fh.writeUInt32BE(id, 4);
    return Buffer.concat([w.subarray(0, 14), h, fh, body]);
  };
  return [mk(0, true, t.subarray(0, 8)), mk(1, false, t.subarray(8))];
}

/** Sets an IPv4 header's checksum again (after a field was changed). */
function ipv4Checksum(f: Buffer, l3 = 14): void {
  f.writeUInt16BE(0, l3 + 10);
  let sum = 0;
  for (let i = 0; i < ((f[l3] ?? 0) & 15) * 4; i += 2) sum += f.readUInt16BE(l3 + i);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  f.writeUInt16BE(~sum & 0xffff, l3 + 10);
}

const truncated = (src: string, dst: string, dport: number) =>
  packet(syn(src, dst, dport)).subarray(0, 14 + 20 + 12);

const HOOKS = ["xdp", "tc-ingress"] as const;

describe("a detect policy with a prevent block rule", () => {
  let lab: KernelLab;
  before(() => {
    lab = new KernelLab();
    lab.policy(MIXED);
  });
  after(() => lab.close());

  for (const hook of HOOKS) {
    test(`${hook}: a SYN to 22 behind 7 destination-options headers is judged: dropped`, () => {
      lab.dp.clearConntrack();
      lab.events();
      const before = lab.counters();
      assert.equal(lab.run(hook, syn(R6, H6, 22, { ext: dstopts(7) })).verdict, "drop");
      assert.deepEqual(lab.events().map(eventLine), [
        `blocked ingress tcp [${R6}]:41000 -> [${H6}]:22 by no-ssh (prevent)`,
      ]);
      assert.deepEqual(KernelLab.delta(before, lab.counters(), ["malformed", "new"]), {
        malformed: 0,
        new: 1,
      });
    });

    test(`${hook}: 40 destination-options headers are walked; to 80 the SYN passes`, () => {
      lab.dp.clearConntrack();
      assert.equal(lab.run(hook, syn(R6, H6, 80, { ext: dstopts(40) })).verdict, "pass");
      assert.equal(lab.run(hook, syn(R6, H6, 22, { ext: dstopts(40) })).verdict, "drop");
    });

    test(`${hook}: IPv4 and IPv6 with a length of 0 (BIG TCP, GSO) are read, not malformed`, () => {
      lab.dp.clearConntrack();
      const before = lab.counters();
      for (const [src, dst, at] of [
        [R, H, 16],
        [R6, H6, 18],
      ] as const) {
        const f = packet(syn(src, dst, 80, { flags: "A", payload: 100 }));
        f.writeUInt16BE(0, at);
        if (at === 16) ipv4Checksum(f);
        assert.equal(lab.run(hook, f).verdict, "pass", `${src} -> ${dst}`);
      }
      assert.equal(KernelLab.delta(before, lab.counters(), ["malformed"]).malformed, 0);
    });

    test(`${hook}: a 616-byte destination-options header before tcp`, () => {
      lab.dp.clearConntrack();
      assert.equal(lab.run(hook, bigDstOpts(80)).verdict, "pass");
      assert.equal(lab.run(hook, bigDstOpts(22)).verdict, "drop");
    });

    // without its first fragment the rest is never reassembled (the receiver's view: "with the
    // kernel reassembling" below); alone, it has no ports, which no rule of this policy blocks
    test(`${hook}: an IPv4 first fragment with 8 bytes of tcp is dropped; the rest is judged alone`, () => {
      lab.dp.clearConntrack();
      const [first, rest] = splitSyn(22);
      const before = lab.counters();
      assert.equal(lab.run(hook, first).verdict, "drop");
      assert.equal(lab.run(hook, rest).verdict, "pass");
      assert.deepEqual(
        KernelLab.delta(before, lab.counters(), ["malformed", "fragment", "fragmentOrphan"]),
        { malformed: 1, fragment: 0, fragmentOrphan: 1 },
      );
    });

    test(`${hook}: an IPv6 first fragment with 8 bytes of tcp is dropped; the rest is judged alone`, () => {
      lab.dp.clearConntrack();
      const [first, rest] = splitSyn6(22);
      const before = lab.counters();
      assert.equal(lab.run(hook, first).verdict, "drop");
      assert.equal(lab.run(hook, rest).verdict, "pass");
      assert.deepEqual(KernelLab.delta(before, lab.counters(), ["fragment", "fragmentOrphan"]), {
        fragment: 0,
        fragmentOrphan: 1,
      });
    });

    test(`${hook}: a cut-short frame is dropped: a prevent block rule could apply`, () => {
      assert.equal(lab.run(hook, truncated(R, H, 443)).verdict, "drop");
    });
  }

  test("egress: no prevent block rule applies, a cut-short frame passes", () => {
    assert.equal(lab.run("tc", truncated(H, R, 443)).verdict, "pass");
  });
});

describe("nothing in prevent but allow rules: nothing is dropped", () => {
  let lab: KernelLab;
  before(() => {
    lab = new KernelLab();
    lab.policy(DETECT);
  });
  after(() => lab.close());

  for (const hook of HOOKS) {
    test(`${hook}: unreadable frames and their fragments pass`, () => {
      lab.dp.clearConntrack();
      assert.equal(lab.run(hook, truncated(R, H, 22)).verdict, "pass");
      const [first, rest] = splitSyn(22, 8, 0x6161);
      assert.equal(lab.run(hook, first).verdict, "pass");
      assert.equal(lab.run(hook, rest).verdict, "pass");
      assert.equal(lab.run(hook, syn(R6, H6, 22, { ext: dstopts(9) })).verdict, "pass");
    });
  }
  test("egress too", () => {
    assert.equal(lab.run("tc", truncated(H, R, 25)).verdict, "pass");
  });
});

describe("a prevent block rule for egress only", () => {
  let lab: KernelLab;
  before(() => {
    lab = new KernelLab();
    lab.policy(EGRESS_ONLY);
  });
  after(() => lab.close());

  test("a cut-short frame leaving is dropped; one arriving passes", () => {
    assert.equal(lab.run("tc", truncated(H, R, 25)).verdict, "drop");
    assert.equal(lab.run("xdp", truncated(R, H, 25)).verdict, "pass");
    assert.equal(lab.run("tc-ingress", truncated(R, H, 25)).verdict, "pass");
  });
});

/** The harness loads and verifies moat's programs first: seconds, more on a busy machine. */
const HARNESS_READY_MS = 60_000;

/** Sends frames (hex) out of an interface as they are (python3: node has no packet socket). */
const SEND_FRAMES = `
import socket, sys
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((sys.argv[1], 0))
for frame in sys.argv[2:]:
    s.send(bytes.fromhex(frame))
`;

const macOf = (ns: string, nic: string): Buffer => {
  const [link] = JSON.parse(sh("ip", ["-n", ns, "-j", "link", "show", "dev", nic])) as {
    address: string;
  }[];
  return Buffer.from((link?.address ?? "").replaceAll(":", ""), "hex");
};

/** The IPv4 reassembly counters of a namespace's stack: fragments taken in, datagrams rebuilt. */
function reassembly(ns: string): { fragments: number; datagrams: number } {
  const ip = sh("ip", ["netns", "exec", ns, "cat", "/proc/net/snmp"])
    .split("\n")
    .filter((line) => line.startsWith("Ip: "))
    .map((line) => line.split(" ").slice(1));
  const [names = [], values = []] = ip;
  const at = (name: string) => Number(values[names.indexOf(name)]);
  return { fragments: at("ReasmReqds"), datagrams: at("ReasmOKs") };
}

describe("with the kernel reassembling behind moat", () => {
  test(
    "no SYN to the blocked port is rebuilt from a first fragment moat cannot read",
    { timeout: 120_000 },
    async (t) => {
      const lab: Lab = createLab(t.name);
      const dir = mkdtempSync(join(tmpdir(), "moat-unreadable-"));
      const policy = join(dir, "policy.yaml");
      writeFileSync(policy, MIXED);
      const harness = spawnLines(
        ...inNamespace(lab.b, `${ROOT}test/helpers/datapath-harness.ts`, [lab.ifB, policy]),
      );
      try {
        await harness.waitFor(/^ready /, HARNESS_READY_MS);
        const [toB, fromA] = [macOf(lab.b, lab.ifB), macOf(lab.a, lab.ifA)];
        const send = (frames: Buffer[]) => {
          const onLink = frames.map((f) => Buffer.concat([toB, fromA, f.subarray(12)]));
          const args = ["-c", SEND_FRAMES, lab.ifA, ...onLink.map((f) => f.toString("hex"))];
          assert.equal(lab.inA("python3", args), 0, "frames sent");
        };
        const ends = { src: lab.v4.a, dst: lab.v4.b };

        // split after the tcp header, moat reads it: the kernel rebuilds the SYN to 80
        const start = reassembly(lab.b);
        send(splitSyn(80, 24, 0x7171, { ...ends, payload: 16 }));
        await untilTrue(
          "the SYN to 80 rebuilt",
          () => reassembly(lab.b).datagrams === start.datagrams + 1,
          10_000,
        );
        // split after 8 bytes of tcp: moat drops the first fragment, the rest reaches the stack
        // and is never part of a datagram
        const before = reassembly(lab.b);
        send(splitSyn(22, 8, 0x7272, ends));
        await untilTrue(
          "the rest taken in by the stack",
          () => reassembly(lab.b).fragments === before.fragments + 1,
          10_000,
        );
        assert.equal(reassembly(lab.b).datagrams, before.datagrams, "no datagram rebuilt");
      } finally {
        harness.kill();
        lab.cleanup();
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );
});

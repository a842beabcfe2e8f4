// The IPv4 address directory's /24 blocks (src/policy/compile/dir4.ts), the layout of a /16 cut
// into many runs (a large feed), in each of its three layouts: the kernel judges addresses at every boundary it has (a /24's
// first and last address, /25-/32 pieces inside a /24 that a rule covers whole, a /16 of a few
// runs beside it, IPv6 beside both) as the reference evaluator does.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { parsePolicy, type PolicyModel } from "../../src/config/index.ts";
import { compile } from "../../src/policy/compile/compile.ts";
import {
  DIR4_BITMAP,
  DIR4_SEGMENT_MAX,
  DIR4_UNIFORM,
  DIR4_WIDE,
} from "../../src/policy/compile/dir4.ts";
import type { ConnectionFacts } from "../../src/policy/facts.ts";
import { evaluate } from "../../src/policy/evaluator.ts";
import { KernelLab } from "../helpers/kernel-lab.ts";

let lab: KernelLab;
before(() => {
  lab = new KernelLab();
});
after(() => lab.close());

const v4 = (a: number): string => [a >>> 24, (a >>> 16) & 255, (a >>> 8) & 255, a & 255].join(".");

/** A CIDR inside the /16 `top`: (third octet, fourth octet, prefix length 24..32). */
type Piece = [number, number, number];
const cidr = (top: number, [c, d, len]: Piece): { first: number; last: number; text: string } => {
  const size = 2 ** (32 - len);
  const first = top * 65536 + c * 256 + (d & ~(size - 1) & 255);
  return { first, last: first + size - 1, text: `${v4(first)}/${len}` };
};

const DENSE = 10 * 256 + 20; // 10.20.0.0/16: many runs, a /24 block
const SPARSE = 10 * 256 + 21; // 10.21.0.0/16: a few runs, a plain segment

function policy(cuts: Piece[], wholes: number[], sparse: Piece[]): string {
  const list = (xs: string[]) => (xs.length ? `[${xs.map((x) => `"${x}"`).join(", ")}]` : "[]");
  return `version: 1
mode: prevent
defaults: { ingress: block, egress: allow }
sets:
  cuts: ${list(cuts.map((p) => cidr(DENSE, p).text))}
  wholes: ${list(wholes.map((c) => cidr(DENSE, [c, 0, 24]).text))}
rules:
  - { name: cut, direction: ingress, action: block, log: true, layer3: { remote: [set:cuts, ${list(sparse.map((p) => cidr(SPARSE, p).text)).slice(1, -1) || '"192.0.2.7"'}] } }
  - { name: whole, direction: ingress, action: allow, log: true, layer3: { remote: [set:wholes, "10.20.7.0/24", "2001:db8:20::/48"] } }
  - { name: six, direction: ingress, action: allow, layer3: { remote: ["2001:db8:20:5::/64", "10.20.9.128/25"] }, layer4: { protocol: tcp, port: [22] } }
  - { name: web, direction: ingress, action: allow, layer4: { protocol: tcp, port: [80] } }
`;
}

function facts(remote: string, port: number): ConnectionFacts {
  const six = remote.includes(":");
  return {
    direction: "ingress",
    protocol: 6,
    family: six ? 6 : 4,
    remote: { ip: remote, port: 40000 },
    local: { ip: six ? "2001:db8:ffff::1" : "10.0.0.1", port },
  };
}

/** The packet builder takes an ipv4-mapped address in hex. */
function wire(ip: string): string {
  const m = /^::ffff:(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(ip);
  if (!m) return ip;
  const [a, b, c, d] = m.slice(1).map(Number) as [number, number, number, number];
  return `::ffff:${(a * 256 + b).toString(16)}:${(c * 256 + d).toString(16)}`;
}

/** Runs one SYN per probe at XDP and compares verdict and event with the evaluator. */
function judgeAll(text: string, probes: string[]): void {
  const model = parsePolicy(text, "dir4.yaml");
  for (const dir4Layout of ["blocks", "wide", "segments"] as const) {
    const image = compile(model, { dir4Layout });
    lab.apply(image);
    const w = image.remote4.words;
    if (dir4Layout === "blocks") {
      assert.equal(w[2 * DENSE + 1], DIR4_BITMAP, "the dense /16 has a /24 block");
      const sparse = w[2 * SPARSE + 1]!;
      assert.ok(sparse <= DIR4_SEGMENT_MAX || sparse === DIR4_UNIFORM, "a sparse /16: no block");
      assert.equal(w[2 * (DENSE + 2) + 1], DIR4_UNIFORM, "10.22/16 is uniform");
    }
    if (dir4Layout === "wide") assert.equal(w[1], DIR4_WIDE);
    judge(model, text, probes, dir4Layout);
  }
}

function judge(model: PolicyModel, text: string, probes: string[], layout: string): void {
  for (const ip of probes) {
    for (const port of [22, 80, 443]) {
      const f = facts(ip, port);
      const expected = evaluate(model, f);
      assert.ok(expected.verdict !== "deferred", "only packet-decidable rules");
      const got = lab.run("xdp", {
        src: wire(ip),
        dst: f.local.ip,
        proto: "tcp",
        sport: 40000,
        dport: port,
        flags: "S",
      });
      const events = lab.events();
      lab.dp.clearConntrack();
      const where = `${ip}:${port}, ${layout} (${expected.reason})\n${text}`;
      assert.equal(got.verdict, expected.verdict === "blocked" ? "drop" : "pass", where);
      assert.deepEqual(
        events.map((e) => `${e.type} ${e.rule}`),
        expected.report ? [`${expected.verdict} ${expected.rule}`] : [],
        where,
      );
    }
  }
}

/** Each piece's first and last address and their neighbours, and each /24's edges. */
function edges(cuts: Piece[], wholes: number[], sparse: Piece[]): string[] {
  const out = new Set<number>();
  const around = (first: number, last: number) => {
    for (const a of [first - 1, first, first + 1, last - 1, last, last + 1]) out.add(a >>> 0);
  };
  for (const p of cuts) {
    const { first, last } = cidr(DENSE, p);
    around(first, last);
    around(first & ~255, (first | 255) >>> 0);
  }
  for (const c of wholes) around(DENSE * 65536 + c * 256, DENSE * 65536 + c * 256 + 255);
  for (const p of sparse) around(cidr(SPARSE, p).first, cidr(SPARSE, p).last);
  for (const t of [DENSE, SPARSE, DENSE + 2]) around(t * 65536, t * 65536 + 65535);
  for (const c of [0, 7, 9, 63, 64, 127, 128, 191, 192, 255])
    around(DENSE * 65536 + c * 256, DENSE * 65536 + c * 256 + 255);
  return [...out].map(v4);
}

const V6 = ["2001:db8:20::1", "2001:db8:20:5::9", "2001:db8:21::1", "::ffff:10.20.7.1"];

test("a /24 block: /24 edges, /25-/32 pieces inside a covered /24, IPv6 beside", () => {
  // 10.20.5.0/24 and 10.20.64.0/24 are covered whole by `whole`, with /25-/32 pieces of `cut`
  // inside; 40 more pieces make the /16 dense
  const cuts: Piece[] = [
    [5, 0, 32],
    [5, 255, 32],
    [5, 64, 26],
    [5, 128, 25],
    [64, 17, 28],
    [63, 255, 32],
    [65, 0, 32],
    ...Array.from({ length: 40 }, (_, i): Piece => [100 + i * 3, (i * 37) & 255, 25 + (i % 8)]),
  ];
  const wholes = [5, 64, 66, 200];
  const sparse: Piece[] = [[3, 9, 32]];
  judgeAll(policy(cuts, wholes, sparse), [...edges(cuts, wholes, sparse), ...V6]);
});

test("random dense /16s are judged as the evaluator judges them", () => {
  const piece = fc.tuple(
    fc.nat(255),
    fc.nat(255),
    fc.integer({ min: 24, max: 32 }),
  ) as fc.Arbitrary<Piece>;
  fc.assert(
    fc.property(
      fc.array(piece, { minLength: 24, maxLength: 120 }),
      fc.array(fc.nat(255), { maxLength: 30 }),
      fc.array(piece, { maxLength: 4 }),
      fc.array(fc.nat(0xffff), { minLength: 40, maxLength: 40 }),
      (cuts, wholes, sparse, random) => {
        const probes = [
          ...edges(cuts, wholes, sparse),
          ...random.map((r) => v4(DENSE * 65536 + r)),
          ...V6,
        ];
        judgeAll(policy(cuts, wholes, sparse), probes);
      },
    ),
    { numRuns: 8, endOnFailure: true },
  );
});

// A policy of more rules than the generation record keeps as objects (it keeps a big one's rules
// as names and a byte each): its events, its rules' counters and its rate limit's swept report
// name the rule that decided, with its action and mode, as a small policy's do. Through
// BPF_PROG_TEST_RUN, the limits reading the time from limit_clock.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { KernelLab } from "../helpers/kernel-lab.ts";
import { eventLine } from "../helpers/fixtures.ts";
import { limitClock } from "../helpers/limit-state.ts";
import { KEPT_AS_NAMES_FROM } from "../../src/datapath/generations.ts";
import type { ClassifierImage } from "../../src/policy/compile/image.ts";

const COUNT = KEPT_AS_NAMES_FROM + 100;
const S = 1_000_000_000n;

/** COUNT rules, each blocking its own UDP port, then a detect rule that logs and a limited one. */
function bigPolicy(): string {
  const lines = [
    "version: 1",
    "mode: prevent",
    "defaults: { ingress: allow, egress: allow }",
    "rules:",
  ];
  for (let i = 0; i < COUNT; i++)
    lines.push(
      `  - { name: r${i}, direction: ingress, action: block, layer4: { protocol: udp, port: [${20000 + i}] } }`,
    );
  lines.push(
    "  - { name: watched, direction: ingress, action: allow, mode: detect, log: true, layer4: { protocol: udp, port: [9001] } }",
    "  - name: limited",
    "    direction: ingress",
    "    action: allow",
    "    layer4: { protocol: udp, port: [9000] }",
    "    rate_limit: { rate: 10/s, burst: 10, source: { ipv4: 24 }, report_every: 10s }",
  );
  return lines.join("\n") + "\n";
}

let lab: KernelLab;
let image: ClassifierImage;
before(() => {
  lab = new KernelLab({ globals: { limit_test_clock: 1 } });
  image = lab.policy(bigPolicy());
});
after(() => lab.close());

const frame = (dport: number, src = "198.51.100.7") =>
  ({ src, dst: "10.0.0.1", proto: "udp", sport: 40000, dport }) as const;

test("a big policy's events name the rule that decided, its action and mode", () => {
  lab.forget();
  assert.equal(lab.run("xdp", frame(20000 + COUNT - 1)).verdict, "drop");
  assert.equal(lab.run("xdp", frame(20007)).verdict, "drop");
  assert.equal(lab.run("xdp", frame(9001)).verdict, "pass");
  assert.deepEqual(
    lab.events().map((e) => eventLine(e)),
    [
      `blocked ingress udp 198.51.100.7:40000 -> 10.0.0.1:${20000 + COUNT - 1} by r${COUNT - 1} (prevent)`,
      "blocked ingress udp 198.51.100.7:40000 -> 10.0.0.1:20007 by r7 (prevent)",
      "allowed ingress udp 198.51.100.7:40000 -> 10.0.0.1:9001 by watched (detect)",
    ],
  );
});

test("a big policy's counters are each rule's, by name, in order", () => {
  lab.forget();
  lab.run("xdp", frame(20000 + COUNT - 2), 3);
  const { rules } = lab.dp.ruleCounters();
  assert.deepEqual(
    rules.map((r) => r.name),
    image.rules.map((r) => r.name),
  );
  assert.equal(rules[COUNT - 2]!.packets, 3n);
  assert.equal(rules.at(-1)!.name, "default");
});

test("a big policy's rate limit: a swept source's report names the limited rule", () => {
  const clock = limitClock(lab.dp.object).ns;
  clock(100_000n * S);
  lab.forget();
  for (let i = 0; i < 15; i++) lab.run("xdp", { ...frame(9000, `198.51.100.${1 + i}`) });
  lab.events();
  lab.dp.sweepLimits(100_000n * S + 3600n * S);
  const swept = lab.events().filter((e) => e.reason === "rate_limit");
  assert.equal(swept.length, 1, "one report of the swept source");
  assert.match(
    eventLine(swept[0]!),
    /^blocked ingress 0 198\.51\.100\.0:0 -> .* by limited \(prevent\)$/,
  );
});

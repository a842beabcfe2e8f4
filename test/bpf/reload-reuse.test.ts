// A swap hands out again the tables the running or the previous policy holds with the same
// content (src/datapath/table-reuse.ts): reloading a policy builds nothing new, and switching
// back and forth between two policies judges every packet by the policy applied last. The daemon
// builds a new policy's tables over turns of its event loop (applyInTurns): packets see the old
// policy until the flip.
import { after, mock, test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readlinkSync } from "node:fs";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { compile } from "../../src/policy/compile/compile.ts";
import { parsePolicy } from "../../src/config/index.ts";
import { tableImage } from "../../src/policy/index.ts";
import { KernelLab } from "../helpers/kernel-lab.ts";

const policy = (blocked: string) => `
version: 1
mode: prevent
defaults: { ingress: allow, egress: allow }
rules:
  - name: no-web-from
    direction: ingress
    action: block
    layer3: { remote: [${blocked}] }
    layer4: { protocol: tcp, port: [80] }
`;
const A = policy("10.1.0.0/16");
const B = policy("192.168.0.0/16");

setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;

const lab = new KernelLab();
after(() => lab.close());

const verdicts = () => ({
  ten: lab.run("xdp", { src: "10.1.2.3", dst: "10.0.0.1", proto: "tcp", dport: 80 }).verdict,
  lan: lab.run("xdp", { src: "192.168.4.5", dst: "10.0.0.1", proto: "tcp", dport: 80 }).verdict,
});

test("reloading and switching policies: unchanged tables reused, verdicts by the last policy", async () => {
  lab.policy(A);
  assert.deepEqual(verdicts(), { ten: "drop", lan: "pass" });
  const before = lab.dp.tablesReused;
  // the array tables' keys (0..n) of the swap before are garbage (after its turn): made again
  await new Promise((resolve) => setImmediate(resolve));
  gc();
  lab.policy(A);
  const reused = lab.dp.tablesReused - before;
  assert.ok(reused >= 10, `the same policy again: ${reused} tables reused`);
  assert.deepEqual(verdicts(), { ten: "drop", lan: "pass" });
  for (const [text, want] of [
    [B, { ten: "pass", lan: "drop" }],
    [A, { ten: "drop", lan: "pass" }],
    [B, { ten: "pass", lan: "drop" }],
    [B, { ten: "pass", lan: "drop" }],
    [A, { ten: "drop", lan: "pass" }],
  ] as const) {
    lab.policy(text);
    assert.deepEqual(verdicts(), want);
  }
});

test("a swap in turns: the event loop runs between its tables, packets see the old policy until the flip", async () => {
  lab.policy(A);
  const image = compile(parsePolicy(B, "b.yaml"));
  const seen: ReturnType<typeof verdicts>[] = [];
  let building = true;
  const watch = () => {
    if (!building) return;
    seen.push(verdicts());
    setImmediate(watch);
  };
  setImmediate(watch);
  // what must happen just before the flip (cutting connections while the old policy still
  // passes their resets) runs once the tables are built, with the old policy live
  let before: { turns: number; verdicts: ReturnType<typeof verdicts> } | undefined;
  const applying = lab.dp.applyInTurns({ packet: image }, undefined, () => {
    before = { turns: seen.length, verdicts: verdicts() };
  });
  const generation = lab.dp.generation;
  const { generation: next } = await applying;
  building = false;
  lab.dp.clearConntrack();
  assert.equal(next, generation + 1);
  // a turn after each of its tables (11), none of them judged by the new policy
  assert.ok(seen.length >= 11, `${seen.length} turns while building`);
  for (const v of seen) assert.deepEqual(v, { ten: "drop", lan: "pass" });
  assert.deepEqual(before, { turns: seen.length, verdicts: { ten: "drop", lan: "pass" } });
  assert.deepEqual(verdicts(), { ten: "pass", lan: "drop" });
});

test("tables made ahead of their swap: the swap takes them, packets see the old policy until the flip", async () => {
  // content no slot holds: its tables are made, ahead or by the swap
  const fresh = (blocked: string) => compile(parsePolicy(policy(blocked), "c.yaml"));
  const probe = () =>
    lab.run("xdp", { src: "172.20.1.2", dst: "10.0.0.1", proto: "tcp", dport: 80 }).verdict;
  let before = lab.dp.tablesReused;
  await lab.dp.applyInTurns({ packet: fresh("172.16.0.0/16") });
  const reusedWithout = lab.dp.tablesReused - before;
  lab.dp.clearConntrack();
  assert.equal(probe(), "pass");

  const image = fresh("172.20.0.0/16");
  const seen: string[] = [];
  let building = true;
  const watch = () => {
    if (!building) return;
    seen.push(probe());
    setImmediate(watch);
  };
  setImmediate(watch);
  before = lab.dp.tablesReused;
  lab.dp.buildAhead(tableImage(image));
  // the swap waits for the tables being made
  await lab.dp.applyInTurns({ packet: image });
  building = false;
  const reused = lab.dp.tablesReused - before;
  // the packet tables (11) came from those made ahead
  assert.ok(
    reused >= reusedWithout + 11,
    `${reused} tables reused with tables ahead, ${reusedWithout} without`,
  );
  assert.ok(seen.length >= 11, `${seen.length} turns while building`);
  assert.deepEqual(new Set(seen), new Set(["pass"]));
  lab.dp.clearConntrack();
  assert.equal(probe(), "drop");
});

// the map descriptors this process holds (the other tests' lab holds its own throughout)
const maps = () =>
  readdirSync("/proc/self/fd").filter((fd) => {
    try {
      return readlinkSync(`/proc/self/fd/${fd}`) === "anon_inode:bpf-map";
    } catch {
      return false;
    }
  }).length;
/** The descriptors a datapath leaves once stopped, with `during` run before it stops. */
const leftBy = async (during: (dp: KernelLab["dp"]) => Promise<void>): Promise<number> => {
  const before = maps();
  const own = new KernelLab();
  try {
    own.policy(A);
    await during(own.dp);
  } finally {
    own.close();
  }
  await new Promise((resolve) => setImmediate(resolve));
  return maps() - before;
};

test("a stopped datapath leaves no map descriptor open, and still says its last generation", async () => {
  // a collected handle of an earlier test may close meanwhile: fewer is fine
  let last = -1;
  let dp: KernelLab["dp"] | undefined;
  const left = await leftBy(async (own) => {
    dp = own;
    // nothing reads the generation between this flip and the stop
    last = (await own.applyInTurns({ packet: compile(parsePolicy(B, "b.yaml")) })).generation;
  });
  assert.ok(left <= 0, `${left} map descriptors left open`);
  // a reload that waited its turn while the daemon stopped reads it
  assert.equal(dp?.generation, last);
});

test("tables made ahead for a policy that never comes, or cut short by a stop, are let go", async () => {
  const other = tableImage(compile(parsePolicy(policy("172.31.0.0/16"), "d.yaml")));
  const plain = await leftBy(async () => {});
  // made ahead, then another policy goes live: closed with the datapath
  const unused = await leftBy(async (dp) => {
    dp.buildAhead(other);
    await dp.applyInTurns({ packet: compile(parsePolicy(B, "b.yaml")) });
  });
  assert.ok(unused <= plain, `map descriptors left open: ${unused}, ${plain} without`);
  // the datapath stops a few tables in
  const stopped = await leftBy(async (dp) => {
    dp.buildAhead(other);
    for (let i = 0; i < 3; i++) await new Promise((resolve) => setImmediate(resolve));
  });
  assert.ok(stopped <= plain, `map descriptors left open: ${stopped}, ${plain} without`);
});

test("tables made ahead that could not all be made are let go though no swap comes", async () => {
  const turn = () => new Promise((resolve) => setImmediate(resolve));
  const good = tableImage(compile(parsePolicy(policy("172.28.0.0/16"), "g.yaml")));
  // its IPv4 directory is made, then its IPv6 table fails (as a kernel out of memory would)
  const failing = { ...good, remote6: [{ prefixlen: 128, addr: new Uint8Array(4), cls: 1 }] };
  lab.policy(A);
  const before = maps();
  mock.timers.enable({ apis: ["setTimeout"] });
  try {
    lab.dp.buildAhead(failing);
    for (let i = 0; i < 20; i++) await turn();
    // no swap comes (its policy was refused): the wait runs out
    mock.timers.tick(30_000);
  } finally {
    mock.timers.reset();
  }
  const left = maps() - before;
  assert.ok(left <= 0, `map descriptors left open: ${left}`);
});

test("tables made ahead for two policies in a row, the datapath stopped during the first: none left open", async () => {
  // a refused policy's tables, then the next policy's, still waiting their turn at the stop
  const first = tableImage(compile(parsePolicy(policy("172.30.0.0/16"), "e.yaml")));
  const second = tableImage(compile(parsePolicy(policy("172.29.0.0/16"), "f.yaml")));
  const turn = () => new Promise((resolve) => setImmediate(resolve));
  const plain = await leftBy(async () => {});
  const before = maps();
  const own = new KernelLab();
  try {
    own.policy(A);
    own.dp.buildAhead(first);
    own.dp.buildAhead(second);
    await turn();
  } finally {
    own.close();
  }
  // whatever was still on its way has met the stop
  for (let i = 0; i < 20; i++) await turn();
  const left = maps() - before;
  assert.ok(left <= plain, `map descriptors left open: ${left}, ${plain} without`);
});

test("a datapath stopped while a swap is being built: the swap fails and lets go of its tables", async () => {
  const image = compile(parsePolicy(B, "b.yaml"));
  const plain = await leftBy(async () => {});
  let outcome: Promise<string> = Promise.resolve("not started");
  const stoppedMidway = await leftBy(async (dp) => {
    outcome = dp.applyInTurns({ packet: image }).then(
      () => "applied",
      (err: Error) => err.message,
    );
    // a few tables in, the daemon stops
    for (let i = 0; i < 3; i++) await new Promise((resolve) => setImmediate(resolve));
  });
  assert.equal(await outcome, "the datapath stopped: the policy was not applied");
  // what the swap had made is closed with the datapath, not left open beside it (a collected
  // handle of an earlier test may close meanwhile: fewer is fine)
  assert.ok(
    stoppedMidway <= plain,
    `map descriptors left open: ${stoppedMidway} with the swap stopped, ${plain} without`,
  );
});

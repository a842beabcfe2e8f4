// The programs loaded before a start's options are known (Datapath.preload, what the daemon does
// while it reads its policy): a start that would load the same object takes it, with the pins a
// previous daemon left adopted as that start would adopt them; a start that would load another
// (other sizes, another pin root) loads its own. Either way the programs judge as after a load.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, rmSync } from "node:fs";
import { parsePolicy } from "../../src/config/index.ts";
import { Attribution } from "../../src/attribution/index.ts";
import { Datapath } from "../../src/datapath/datapath.ts";
import { compilePolicy } from "../../src/policy/compile/policy-image.ts";
import type { PolicyImage } from "../../src/policy/compile/kernel-image.ts";
import { readProcessUniverse } from "../../src/host/process-universe.ts";
import { testCgroup, type TestCgroup } from "../helpers/cgroup-run.ts";
import { packet } from "../helpers/packets.ts";
import { XDP_DROP } from "../helpers/kernel-lab.ts";

const H = "10.0.0.1";
const P = "198.51.100.1";

let cg: TestCgroup;
let image: PolicyImage;

before(() => {
  cg = testCgroup("preload");
  const model = parsePolicy(
    "version: 1\nmode: prevent\ndefaults: { ingress: block, egress: allow }\nrules: []\n",
    "test.yaml",
  );
  image = compilePolicy(model, readProcessUniverse(model, new Attribution()));
});
after(() => cg.remove());

/** A SYN from P to this host, judged by `dp`'s XDP program: dropped under ingress: block. */
const inboundDropped = (dp: Datapath): boolean =>
  dp.xdp.testRun({ data: packet({ src: P, dst: H, proto: "tcp", dport: 8080, flags: "S" }) })
    .retval === XDP_DROP;

test("a start without pins takes the preloaded programs; they judge by its policy", () => {
  const pre = Datapath.preload({ pinRoot: null });
  const dp = Datapath.start({ interfaces: [], pinRoot: null, image, preloaded: pre });
  try {
    assert.equal(dp.object, pre.object);
    assert.equal(dp.adoption, null);
    assert.ok(inboundDropped(dp));
  } finally {
    dp.stop();
  }
});

test("a start with other sizes loads its own programs", () => {
  const pre = Datapath.preload({ pinRoot: null });
  const dp = Datapath.start({
    interfaces: [],
    pinRoot: null,
    image,
    conntrackEntries: 4096,
    preloaded: pre,
  });
  try {
    assert.notEqual(dp.object, pre.object);
    assert.ok(inboundDropped(dp));
  } finally {
    dp.stop();
  }
});

test("a first start and a restart take the preload: nothing pinned, then the pins adopted", () => {
  const pinRoot = `/sys/fs/bpf/moat-test-preload-${process.pid}`;
  let first: Datapath | null = null;
  let next: Datapath | null = null;
  try {
    const pre = Datapath.preload({ pinRoot });
    assert.equal(pre.pinned, null);
    assert.ok(!existsSync(pinRoot), "a preload creates no pin");
    first = Datapath.start({ interfaces: [], pinRoot, cgroup: cg.dir, image, preloaded: pre });
    assert.equal(first.object, pre.object);
    assert.deepEqual(first.adoption?.adopted, []);
    assert.ok(first.adoption?.fresh.every((f) => f.reason === "nothing pinned"));
    const generation = first.generation;
    first.stop({ keepPins: true });
    first = null;

    const again = Datapath.preload({ pinRoot });
    next = Datapath.start({ interfaces: [], pinRoot, cgroup: cg.dir, image, preloaded: again });
    assert.equal(next.object, again.object);
    assert.ok(next.adoption?.adopted.includes("conntrack"), next.pinnedReport().join("\n"));
    assert.deepEqual(next.adoption?.fresh, []);
    assert.ok(next.generation > generation, "generations continue");
    assert.ok(inboundDropped(next));
  } finally {
    first?.stop();
    next?.stop();
    rmSync(pinRoot, { recursive: true, force: true });
  }
});

// Migrating a pinned map group whose layout version differs from this build's (docs/datapath.md,
// "When a layout changed"), with real kernel maps and the previous datapath's programs still
// loaded: what those programs write between the copy and the swap is carried by the delta, and a
// converter that fails leaves its group empty, with the reason in the log, and nothing else lost.
// The connection table of layout 6 (65,536 entries) is carried into layout 7's of one more.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { rmSync } from "node:fs";
import { parsePolicy } from "../../src/config/index.ts";
import { Attribution } from "../../src/attribution/index.ts";
import { Datapath, OBJECT_FILE } from "../../src/datapath/datapath.ts";
import { native } from "../../src/datapath/addon.ts";
import { owner as ownerCodec } from "../../src/datapath/abi.ts";
import { registerConverter } from "../../src/datapath/map-migration.ts";
import { MAP_GROUPS, PinnedMaps } from "../../src/datapath/pinned-maps.ts";
import { conntrackEntries, type ConntrackEntry } from "../../src/datapath/conntrack.ts";
import type { BpfMap } from "../../src/datapath/native.d.ts";
import { compilePolicy } from "../../src/policy/compile/policy-image.ts";
import type { PolicyImage } from "../../src/policy/compile/kernel-image.ts";
import { readProcessUniverse } from "../../src/host/process-universe.ts";
import { testCgroup, type TestCgroup } from "../helpers/cgroup-run.ts";
import { packet } from "../helpers/packets.ts";
import { LAYOUT6, LAYOUT6_ENTRIES, plantLayout6 } from "../helpers/ct-layout6.ts";
import { ROOT } from "../helpers/paths.ts";

const H = "10.0.0.1";
const P = "198.51.100.1";

let cg: TestCgroup;
let image: PolicyImage;

before(() => {
  cg = testCgroup("migrate");
  const model = parsePolicy(
    "version: 1\nmode: prevent\ndefaults: { ingress: block, egress: allow }\nrules: []\n",
    "test.yaml",
  );
  image = compilePolicy(model, readProcessUniverse(model, new Attribution()));
});
after(() => cg.remove());

/** A UDP flow this host opens to P:53 from `port`, through `dp`'s tc program (an entry). */
function open(dp: Datapath, port: number): void {
  const r = dp.tc.testRun({
    data: packet({ src: H, dst: P, proto: "udp", sport: port, dport: 53 }),
  });
  assert.equal(r.retval, 0, "allowed egress");
}

const flows = (map: BpfMap): Map<number, ConntrackEntry> =>
  new Map([...conntrackEntries(map)].map((e) => [e.local.port, e]));

/** Makes the pinned record say `group` has layout 0. */
function pretendOldLayout(pinRoot: string, group = "conntrack"): void {
  const record = native().BpfMap.openPinned(`${pinRoot}/abi`);
  const key = Buffer.alloc(16);
  key.write(group);
  record.update(key, Buffer.alloc(8));
  record.close();
}

test("entries the old programs create, change or drop between the copy and the swap are carried", () => {
  const pinRoot = `/sys/fs/bpf/moat-test-migrate-delta-${process.pid}`;
  const old = Datapath.start({ interfaces: [], pinRoot, cgroup: cg.dir, image });
  const object = native().BpfObject.open(`${ROOT}build/bpf/${OBJECT_FILE}`);
  let pinned: PinnedMaps | null = null;
  try {
    open(old, 40001);
    open(old, 40002);
    pretendOldLayout(pinRoot);
    registerConverter({
      group: "conntrack",
      from: 0,
      to: MAP_GROUPS.conntrack!.version,
      maps: { conntrack: { convert: (key, value) => ({ key, value }) } },
    });

    pinned = new PinnedMaps(pinRoot);
    const adoption = pinned.adopt(object); // the copy
    assert.deepEqual(
      adoption.migrated.map((m) => [m.group, m.copied]),
      [["conntrack", 2]],
    );
    // the old programs keep judging until the swap: a new flow, a flow's next datagram, and a
    // flow whose entry goes (as an idle one would)
    open(old, 40003);
    const oldMap = old.conntrackMap;
    const before = flows(oldMap).get(40001);
    open(old, 40001);
    const gone = flows(oldMap).get(40002);
    assert.ok(gone && before);
    oldMap.delete(gone.key);

    object.load();
    pinned.pin(object, adoption);
    const newMap = object.map("conntrack");
    try {
      assert.deepEqual([...flows(newMap).keys()].sort(), [40001, 40002], "copied before the swap");
      const [line] = pinned.finishMigrations(); // after the swap: the delta
      assert.match(line ?? "", /pinned conntrack maps: 3 entries changed during the restart/);
      const now = flows(newMap);
      assert.deepEqual([...now.keys()].sort(), [40001, 40003]);
      assert.equal(now.get(40003)?.id, flows(oldMap).get(40003)?.id, "the new flow, as it is");
      assert.equal(now.get(40001)?.packets.initiator, 2n, "the flow's later datagram counted");
      assert.equal(now.get(40001)?.id, before.id);
    } finally {
      newMap.close();
    }
  } finally {
    pinned?.close();
    object.close();
    old.stop();
    rmSync(pinRoot, { recursive: true, force: true });
  }
});

test("a converter that throws leaves its group empty, says why, and loses nothing else", () => {
  const pinRoot = `/sys/fs/bpf/moat-test-migrate-throw-${process.pid}`;
  let old: Datapath | null = Datapath.start({ interfaces: [], pinRoot, cgroup: cg.dir, image });
  let next: Datapath | null = null;
  try {
    open(old, 40001);
    old.seedOwners([
      { cookie: 77n, cgroupId: 1n, exeIno: 2n, exeDev: 3, pid: 4, uid: 5, comm: "seeded" },
    ]);
    const generation = old.generation;
    old.stop({ keepPins: true });
    old = null;
    pretendOldLayout(pinRoot);
    registerConverter({
      group: "conntrack",
      from: 0,
      to: MAP_GROUPS.conntrack!.version,
      maps: {
        conntrack: {
          convert: () => {
            throw new Error("an entry it cannot read");
          },
        },
      },
    });

    next = Datapath.start({ interfaces: [], pinRoot, cgroup: cg.dir, image });
    assert.deepEqual(next.adoption?.migrated, []);
    assert.deepEqual(next.adoption?.adopted, [
      "policy",
      "sockets",
      "redirects",
      "resolvers",
      "events",
      "quic",
      "ids",
      "flows",
      "daemon",
      "names",
      "limits",
      "limitCache",
      "exes",
    ]);
    assert.ok(
      next
        .pinnedReport()
        .includes(
          `pinned conntrack maps not adopted (layout version 0, this build has ${MAP_GROUPS.conntrack!.version}; its converter failed: conntrack: an entry it cannot read): created empty`,
        ),
      next.pinnedReport().join("\n"),
    );
    assert.equal([...next.conntrack()].length, 0, "the connection table starts empty");
    const cookie = Buffer.alloc(8);
    cookie.writeBigUInt64LE(77n);
    const cookies = native().BpfMap.openPinned(`${pinRoot}/maps/owner_cookies`);
    assert.ok(cookies.lookup(cookie), "the sockets group kept its entries");
    cookies.close();
    assert.ok(next.generation > generation, "generations continue");
    // the new table is the pinned one and the programs use it
    open(next, 40009);
    const pinnedTable = native().BpfMap.openPinned(`${pinRoot}/maps/conntrack`);
    assert.deepEqual([...flows(pinnedTable).keys()], [40009]);
    pinnedTable.close();
  } finally {
    old?.stop();
    next?.stop();
    rmSync(pinRoot, { recursive: true, force: true });
  }
});

test("the sockets group migrates: socket records kept as they are, owner cookies converted", () => {
  const pinRoot = `/sys/fs/bpf/moat-test-migrate-sockets-${process.pid}`;
  let old: Datapath | null = Datapath.start({ interfaces: [], pinRoot, cgroup: cg.dir, image });
  let next: Datapath | null = null;
  try {
    old.seedOwners([
      { cookie: 78n, cgroupId: 1n, exeIno: 2n, exeDev: 3, pid: 4, uid: 5, comm: "seeded" },
    ]);
    old.stop({ keepPins: true });
    old = null;
    const socksId = () => {
      const m = native().BpfMap.openPinned(`${pinRoot}/maps/socks`);
      const id = m.id();
      m.close();
      return id;
    };
    const before = socksId();
    pretendOldLayout(pinRoot, "sockets");
    // a layout change of the owner records, as a converter would carry it: here, the uid moves
    registerConverter({
      group: "sockets",
      from: 0,
      to: 1,
      maps: {
        socks: { keep: true },
        owners: { keep: true },
        owner_cookies: {
          convert: (key, value) => {
            const owner = ownerCodec.decode(value);
            return { key, value: ownerCodec.encode({ ...owner, uid: owner.uid + 1000 }) };
          },
        },
      },
    });
    next = Datapath.start({ interfaces: [], pinRoot, cgroup: cg.dir, image });
    assert.deepEqual(
      next.adoption?.migrated.map((m) => [m.group, m.copied]),
      [["sockets", 1]],
    );
    assert.equal(socksId(), before, "the socket records are the same map");
    const cookie = Buffer.alloc(8);
    cookie.writeBigUInt64LE(78n);
    const cookies = native().BpfMap.openPinned(`${pinRoot}/maps/owner_cookies`);
    const carried = cookies.lookup(cookie);
    cookies.close();
    assert.ok(carried, "the owner cookie was carried");
    assert.equal(ownerCodec.decode(carried).uid, 1005, "in the new layout");
  } finally {
    old?.stop();
    next?.stop();
    rmSync(pinRoot, { recursive: true, force: true });
  }
});

test("policy maps pinned in layout 2 are migrated by rebuilding them: the policy applies, generations continue", () => {
  const pinRoot = `/sys/fs/bpf/moat-test-migrate-policy-${process.pid}`;
  let old: Datapath | null = Datapath.start({ interfaces: [], pinRoot, cgroup: cg.dir, image });
  let next: Datapath | null = null;
  try {
    const generation = old.generation;
    old.stop({ keepPins: true });
    old = null;
    const record = native().BpfMap.openPinned(`${pinRoot}/abi`);
    const key = Buffer.alloc(16);
    key.write("policy");
    const two = Buffer.alloc(8);
    two.writeBigUInt64LE(2n);
    record.update(key, two);
    record.close();

    next = Datapath.start({ interfaces: [], pinRoot, cgroup: cg.dir, image });
    assert.ok(
      next
        .pinnedReport()
        .includes(
          `pinned policy maps migrated from layout 2 to ${MAP_GROUPS.policy!.version}: 0 entries copied (the policy slots are rebuilt by the first apply; layout 2 holds no name bindings)`,
        ),
      next.pinnedReport().join("\n"),
    );
    assert.ok(next.generation > generation, "generations continue");
    open(next, 40010); // judged by the applied policy: egress allowed
  } finally {
    old?.stop();
    next?.stop();
    rmSync(pinRoot, { recursive: true, force: true });
  }
});

test("a connection table of layout 6 is copied into one of an entry more: connections kept, capacity 65,536", () => {
  const pinRoot = `/sys/fs/bpf/moat-test-migrate-layout6-${process.pid}`;
  let old: Datapath | null = Datapath.start({ interfaces: [], pinRoot, cgroup: cg.dir, image });
  let next: Datapath | null = null;
  const pinnedMap = (name: string) => {
    const m = native().BpfMap.openPinned(`${pinRoot}/maps/${name}`);
    const facts = { id: m.id(), entries: m.maxEntries };
    m.close();
    return facts;
  };
  try {
    open(old, 40001);
    open(old, 40002);
    const tracked = flows(old.conntrackMap);
    old.stop({ keepPins: true });
    old = null;
    assert.equal(plantLayout6(pinRoot), 2);
    const kept = { frags: pinnedMap("frags"), counters: pinnedMap("counters") };

    next = Datapath.start({ interfaces: [], pinRoot, cgroup: cg.dir, image });
    assert.deepEqual(
      next.adoption?.migrated.map((m) => [m.group, m.from, m.to, m.copied]),
      [["conntrack", LAYOUT6, MAP_GROUPS.conntrack!.version, 2]],
    );
    assert.ok(
      next
        .pinnedReport()
        .includes(
          `pinned conntrack maps migrated from layout 6 to ${MAP_GROUPS.conntrack!.version}: 2 entries copied`,
        ),
      next.pinnedReport().join("\n"),
    );
    // the kernel's table holds one entry more than it is sized for; what status reports is the
    // size
    assert.equal(next.conntrackMap.maxEntries, LAYOUT6_ENTRIES + 1);
    assert.equal(next.conntrackCapacity, LAYOUT6_ENTRIES);
    assert.equal(pinnedMap("conntrack").entries, LAYOUT6_ENTRIES + 1, "the new table is pinned");
    assert.deepEqual(
      [...flows(next.conntrackMap)].map(([port, e]) => [port, e.id, e.createdNs]).sort(),
      [...tracked].map(([port, e]) => [port, e.id, e.createdNs]).sort(),
      "every connection as it was",
    );
    assert.deepEqual(
      { frags: pinnedMap("frags"), counters: pinnedMap("counters") },
      kept,
      "the fragment records and counters are the same maps",
    );
    assert.equal(kept.frags.entries, LAYOUT6_ENTRIES, "fragment records: as many as connections");
    // a flow's next datagram is its connection's, in the new table
    open(next, 40001);
    assert.equal(flows(next.conntrackMap).get(40001)?.packets.initiator, 2n);
  } finally {
    old?.stop();
    next?.stop();
    rmSync(pinRoot, { recursive: true, force: true });
  }
});

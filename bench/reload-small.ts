// B5, small policies (docs/performance.md): what a reload of a policy of a few rules costs in the
// swap, where the maps' sizes do not matter and the fixed costs do.
//
// 1. Map-in-map writes: each returns only after an RCU grace period. The 20 outer maps of a swap
//    written one after another (bpf_map_update_batch each) against the same writes side by side
//    (the addon's updateBatches, a thread per map), in the same run.
// 2. Datapath.apply() of a 9-rule policy (packet, socket and names images), alternately the same
//    policy again (its tables reused) and a changed one (every table built).
//
//   node bench/reload-small.ts      writes bench/results/reload-small.json
import { native } from "../src/datapath/addon.ts";
import { Datapath } from "../src/datapath/datapath.ts";
import { createMap, MAP_ARRAY, BPF_F_INNER_MAP } from "../src/datapath/table-maps.ts";
import { parsePolicy } from "../src/config/index.ts";
import { compilePolicy } from "../src/policy/compile/policy-image.ts";
import type { BpfMap } from "../src/datapath/native.d.ts";
import { median, writeResult } from "./results.ts";

const ROUNDS = 15;
const OUTERS = 20;
const MAP_ARRAY_OF_MAPS = 12;
const NO_ROUTES = { image: { v4: [], v6: [] }, links: [], notes: [] };

function outerWrites(): { oneByOneMs: number; sideBySideMs: number } {
  const inner = () => createMap("b_inner", MAP_ARRAY, 4, 4, 4, BPF_F_INNER_MAP);
  const template = inner();
  const outers = Array.from({ length: OUTERS }, () =>
    native().BpfMap.create({
      type: MAP_ARRAY_OF_MAPS,
      keySize: 4,
      valueSize: 4,
      maxEntries: 2,
      flags: 0,
      name: "b_outer",
      innerMap: template,
    }),
  );
  const batches = (maps: BpfMap[]) =>
    outers.map((map, i) => {
      const keys = Buffer.alloc(4);
      const values = Buffer.alloc(4);
      values.writeUInt32LE(maps[i]!.fd);
      return { map, keys, values, count: 1 };
    });
  const one: number[] = [];
  const side: number[] = [];
  try {
    for (let r = 0; r < ROUNDS; r++) {
      const maps = outers.map(() => inner());
      const b = batches(maps);
      let t = performance.now();
      for (const x of b) x.map.updateBatch(x.keys, x.values, 1);
      one.push(performance.now() - t);
      t = performance.now();
      native().updateBatches(b);
      side.push(performance.now() - t);
      for (const m of maps) m.close();
    }
  } finally {
    for (const m of [...outers, template]) m.close();
  }
  return { oneByOneMs: median(one), sideBySideMs: median(side) };
}

const policy = (port: number) => `version: 1
mode: prevent
defaults: { ingress: allow, egress: block }
rules:
  - { name: no-blocked, direction: egress, action: block, layer7: { dns: { name: [blocked.example] } } }
  - { name: dns, direction: egress, action: allow, layer4: { protocol: udp, port: [53] } }
  - { name: web, direction: egress, action: allow, layer3: { remote: [allowed.example] }, layer4: { protocol: tcp, port: [${port}] }, process: { name: [curl] } }
  - { name: any-depth, direction: egress, action: allow, layer3: { remote: ["**.example"] }, layer4: { protocol: tcp, port: [8082] } }
  - { name: lan, direction: egress, action: allow, layer3: { remote: [10.0.0.0/8, 192.168.0.0/16] } }
  - { name: ssh-in, direction: ingress, action: allow, layer3: { remote: [10.1.0.0/16] }, layer4: { protocol: tcp, port: [22] } }
  - { name: no-smb, direction: ingress, action: block, layer4: { protocol: tcp, port: [445] } }
  - { name: ping, direction: ingress, action: allow, layer4: { protocol: icmp } }
  - { name: root-out, direction: egress, action: allow, process: { user: [root] } }
`;

function applies(): { sameMs: number; changedMs: number; reusedPerSame: number } {
  const dp = Datapath.start({ interfaces: [], pinRoot: null });
  const host = { executables: [], users: new Map([["root", 0]]), cgroups: [], routes: NO_ROUTES };
  const image = (port: number) =>
    compilePolicy(parsePolicy(policy(port), "bench.yaml"), host, {
      dnsProxy: { udp: { ip: "127.0.0.1", port: 53053 }, tcp: { ip: "127.0.0.1", port: 53053 } },
    });
  const same: number[] = [];
  const changed: number[] = [];
  let reused = 0;
  let port = 80;
  try {
    dp.apply(image(port));
    for (let r = 0; r < ROUNDS; r++) {
      const before = dp.tablesReused;
      same.push(dp.apply(image(port)).ms); // the live policy again
      reused += dp.tablesReused - before;
      changed.push(dp.apply(image(++port)).ms); // a port no slot has had
    }
  } finally {
    dp.stop();
  }
  return { sameMs: median(same), changedMs: median(changed), reusedPerSame: reused / ROUNDS };
}

const writes = outerWrites();
const swap = applies();
console.table({ ...writes, ...swap });
writeResult("reload-small", { bench: "B5 small reloads", rounds: ROUNDS, ...writes, ...swap });

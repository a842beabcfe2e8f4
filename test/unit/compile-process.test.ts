// The process classes (src/policy/compile/process.ts) against the reference evaluator: for random
// process rules, hosts and processes, a rule is in the class the kernel would compute exactly
// when the evaluator says its process section matches.
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { parsePolicy } from "../../src/config/index.ts";
import { compileProcess, processClass, commRange } from "../../src/policy/compile/process.ts";
import type { ProcessUniverse } from "../../src/policy/compile/process.ts";
import { matchProcess } from "../../src/policy/match-context.ts";
import type { ProcessFacts } from "../../src/attribution/index.ts";

const PATHS = ["/usr/bin/curl", "/usr/bin/wget", "/usr/local/bin/app", "/opt/tool/run"];
const PATH_GLOBS = ["/usr/bin/curl", "/usr/bin/*", "/usr/*", "/opt/tool/*", "/nowhere/x"];
const NAMES = ["curl", "wget", "python3", "python3.11", "app", "ssh"];
const NAME_PATTERNS = ["curl", "python3*", "py*", "app", "s*", "wget"];
const USERS: (number | string)[] = [0, 1000, "nobody", "www-data", "ghost"];
const UIDS = [0, 33, 1000, 65534];
const CGROUPS = [
  "/",
  "/system.slice",
  "/system.slice/nginx.service",
  "/user.slice/u-1000",
  "/docker/abc",
];
const CGROUP_GLOBS = ["/system.slice", "/system.slice/nginx.service", "/user.slice/*", "/docker/*"];

const universe: ProcessUniverse = {
  executables: PATHS.map((path, i) => ({ dev: 7, ino: BigInt(100 + i), path })),
  users: new Map([
    ["nobody", 65534],
    ["www-data", 33],
  ]),
  cgroups: CGROUPS.map((path, i) => ({
    id: BigInt(500 + i),
    path,
    container:
      path === "/docker/abc" ? { id: "abc".padEnd(64, "0"), name: "web", image: "nginx:1" } : null,
  })),
  routes: { image: { v4: [], v6: [] }, links: [], notes: [] },
};

const section = fc.record(
  {
    path: fc.subarray(PATH_GLOBS, { minLength: 1 }),
    name: fc.subarray(NAME_PATTERNS, { minLength: 1 }),
    user: fc.subarray(USERS, { minLength: 1 }),
    cgroup: fc.subarray(CGROUP_GLOBS, { minLength: 1 }),
    container: fc.constantFrom({ name: "web" }, { image: "nginx:*" }, { name: "db" }),
  },
  { requiredKeys: [] },
);

const yamlOf = (sections: Record<string, unknown>[]): string =>
  `version: 1\nattach: { cgroup: / }\nrules:\n` +
  sections
    .map(
      (p, i) =>
        `  - { name: r${i}, direction: egress, action: allow, process: ${JSON.stringify(p)} }\n`,
    )
    .join("");

const process = fc.record({
  exe: fc.integer({ min: 0, max: PATHS.length }),
  name: fc.constantFrom(...NAMES),
  uid: fc.constantFrom(...UIDS),
  cgroup: fc.integer({ min: 0, max: CGROUPS.length - 1 }),
});

test("a rule is in the kernel's process class exactly when its process section matches", () => {
  let matched = 0;
  fc.assert(
    fc.property(
      fc.array(section, { minLength: 1, maxLength: 5 }),
      fc.array(process, { minLength: 1, maxLength: 20 }),
      // how many entries a folded combination table may have: 0 folds no step (four lookups),
      // small limits fold some steps, the default all of these small policies'
      fc.constantFrom(0, 8, 40, undefined),
      (sections, procs, foldLimit) => {
        const model = parsePolicy(yamlOf(sections), "p.yaml");
        const img = compileProcess(model, universe, foldLimit);
        assert.ok(img);
        for (const p of procs) {
          const exe = universe.executables[p.exe];
          const cg = universe.cgroups[p.cgroup]!;
          const cls = processClass(img, {
            dev: exe?.dev ?? 1,
            ino: exe?.ino ?? 1n,
            comm: p.name,
            uid: p.uid,
            cgroupId: cg.id,
          });
          const facts: ProcessFacts = {
            pid: 1,
            name: p.name,
            path: exe?.path ?? "/elsewhere/unknown",
            user: p.uid,
            userName: [...universe.users].find(([, u]) => u === p.uid)?.[0] ?? null,
            cgroup: cg.path,
            container: cg.container,
          };
          for (const rule of model.rules) {
            const want = matchProcess(rule.process!, facts).result === "yes";
            const got = img.classesOf.get(rule.index)!.includes(cls);
            if (want) matched++;
            assert.equal(
              got,
              want,
              `${rule.name} ${JSON.stringify(rule.process)} vs ${JSON.stringify(facts)}`,
            );
          }
        }
      },
    ),
    { numRuns: 300 },
  );
  assert.ok(matched > 100, `only ${matched} matches: the generator is too narrow`);
});

test("combination steps are folded while the next table stays within the limit", () => {
  const model = parsePolicy(
    yamlOf([
      { path: ["/usr/bin/*"], user: [0] },
      { name: ["curl"], cgroup: ["/docker/*"] },
      { user: ["nobody"], cgroup: ["/system.slice"] },
    ]),
    "p.yaml",
  );
  const all = compileProcess(model, universe)!;
  const none = compileProcess(model, universe, 0)!;
  assert.equal(none.folds, 0);
  const paths = none.a.length / none.nn;
  assert.equal(paths, 2);
  // one lookup: D indexed by the path, name, user, cgroup and interface classes at once
  assert.equal(all.folds, 0b111);
  assert.deepEqual([all.a.length, all.b.length, all.p.length], [1, 1, 1]);
  assert.equal(all.d.length, paths * all.nn * all.nu * all.nc * all.ni);
  assert.equal(none.count, all.count);
});

test("names: exact and trailing '*' only, as comm holds them", () => {
  assert.ok(commRange("curl"));
  assert.ok(commRange("python3*"));
  assert.equal(commRange("*sh"), null);
  assert.equal(commRange("a?c"), null);
  assert.equal(commRange("a-name-longer-than-15"), null);
});

test("a bridge's or bond's port is judged as its master, the interface the host's IP layer sees", () => {
  const links = [
    { ifindex: 5, ifname: "br0", kind: "bridge", tunnel: false },
    { ifindex: 6, ifname: "eth1", kind: "", tunnel: false, master: "br0" },
    { ifindex: 7, ifname: "bond0", kind: "bond", tunnel: false },
    { ifindex: 8, ifname: "eth2", kind: "", tunnel: false, master: "bond0" },
    { ifindex: 9, ifname: "eth3", kind: "", tunnel: false },
  ];
  const img = compileProcess(
    parsePolicy(
      `version: 1
attach: { cgroup: / }
rules:
  - { name: by-bridge, direction: ingress, action: allow, interface: { name: [br0] } }
  - { name: by-bond, direction: ingress, action: allow, interface: { name: [bond0] } }
  - { name: by-port, direction: ingress, action: allow, interface: { name: [eth1, eth2] } }
`,
      "p.yaml",
    ),
    { ...universe, routes: { image: { v4: [], v6: [] }, links, notes: [] } },
  )!;
  const cls = (ifindex: number) => img.iface.find((i) => i.ifindex === ifindex)?.cls ?? 0;
  assert.notEqual(cls(5), 0);
  assert.equal(cls(6), cls(5), "eth1 in br0");
  assert.notEqual(cls(7), 0);
  assert.equal(cls(8), cls(7), "eth2 in bond0");
  assert.notEqual(cls(5), cls(7));
  assert.equal(cls(9), 0, "a port of nothing, named by no rule");
});

test("a tunnel enslaved to a bridge (vxlan in br0) is judged as the bridge, tunnelled", () => {
  const links = [
    { ifindex: 5, ifname: "br0", kind: "bridge", tunnel: false },
    { ifindex: 6, ifname: "vx0", kind: "vxlan", tunnel: true, master: "br0" },
    { ifindex: 7, ifname: "eth1", kind: "", tunnel: false, master: "br0" },
  ];
  const img = compileProcess(
    parsePolicy(
      `version: 1
attach: { cgroup: / }
rules:
  - { name: tunnelled-bridge, direction: ingress, action: allow, interface: { name: [br0], tunnel: true } }
  - { name: plain-bridge, direction: ingress, action: allow, interface: { name: [br0], tunnel: false } }
`,
      "p.yaml",
    ),
    { ...universe, routes: { image: { v4: [], v6: [] }, links, notes: [] } },
  )!;
  const cls = (ifindex: number) => img.iface.find((i) => i.ifindex === ifindex)?.cls ?? 0;
  assert.notEqual(cls(6), 0);
  assert.notEqual(cls(6), cls(7), "the vxlan port is tunnelled, the plain port is not");
  assert.equal(cls(7), cls(5), "the plain port is the bridge");
});

test("a macvlan is found by its lower device and MAC address; a vlan or a link without a lower is not", () => {
  const links = [
    { ifindex: 2, ifname: "eth0", kind: "", tunnel: false },
    {
      ifindex: 5,
      ifname: "mv0",
      kind: "macvlan",
      tunnel: false,
      lower: "eth0",
      mac: "02:00:00:00:00:05",
    },
    {
      ifindex: 6,
      ifname: "mv1",
      kind: "macvlan",
      tunnel: false,
      lower: "gone0",
      mac: "02:00:00:00:00:06",
    },
  ];
  const img = compileProcess(
    parsePolicy(
      `version: 1
attach: { cgroup: / }
rules:
  - { name: by-macvlan, direction: ingress, action: allow, interface: { name: [mv0] } }
`,
      "p.yaml",
    ),
    { ...universe, routes: { image: { v4: [], v6: [] }, links, notes: [] } },
  )!;
  assert.deepEqual(img.stacked, [{ ifindex: 2, mac: "02:00:00:00:00:05", upper: 5 }]);
  assert.notEqual(img.iface.find((i) => i.ifindex === 5)?.cls ?? 0, 0, "the macvlan has its class");
});

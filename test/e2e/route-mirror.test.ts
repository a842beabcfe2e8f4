// The route mirror in a namespace lab: a veth with a default route, a vxlan, a tun, a tap and
// reject routes (plus gre, ipip and wireguard where this kernel has them). The mirror must name the
// interface and tunnel flag `ip route get` would, follow routes and links added while it runs,
// and agree with `ip route get` on hundreds of random addresses.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import fc from "fast-check";
import { startRouteMirror, type RouteMirror, type RouteSnapshot } from "../../src/route/index.ts";
import { watchRtnl } from "../../src/datapath/index.ts";
import { createLab, sh, type Lab } from "../helpers/netns.ts";

let lab: Lab;
let mirror: RouteMirror | undefined;

/** `ip -n <lab ns> ...`: the lab's namespace only, never the host's routes */
const ipA = (...args: string[]) => sh("ip", ["-n", lab.a, ...args]);

/** Whether this kernel can create a link of `kind` (probed in a throwaway namespace). */
function kernelHasLink(kind: string, args: string[]): boolean {
  const ns = `moat-rtprobe-${process.pid}`;
  spawnSync("ip", ["netns", "add", ns]);
  try {
    const r = spawnSync("ip", ["-n", ns, "link", "add", "probe0", "type", kind, ...args]);
    return r.status === 0;
  } finally {
    spawnSync("ip", ["netns", "del", ns]);
  }
}

const OPTIONAL = [
  { kind: "gre", args: ["local", "192.0.2.1", "remote", "192.0.2.2"], config: "CONFIG_NET_IPGRE" },
  { kind: "ipip", args: ["local", "192.0.2.1", "remote", "192.0.2.3"], config: "CONFIG_NET_IPIP" },
  { kind: "wireguard", args: [], config: "CONFIG_WIREGUARD" },
].map((o) => ({ ...o, present: kernelHasLink(o.kind, o.args) }));

// the lab's extra prefixes (the veth's own /24 and /64 come from createLab)
const NET = {
  vxlanLan: "10.241.0.0/24",
  viaVxlan: "10.242.0.0/16",
  viaTun: "10.244.0.0/16",
  viaTap: "10.245.0.0/16",
  viaVeth: "10.246.0.0/16",
  blackhole: "10.247.0.0/16",
  unreachable: "10.248.0.0/16",
  prohibit: "10.249.0.0/16",
  vxlanLan6: "fd41::/64",
  viaVxlan6: "fd42::/48",
  viaTun6: "fd44::/48",
};

before(() => {
  lab = createLab("route mirror lab");
  // default routes leave by the veth
  ipA("route", "add", "default", "via", lab.v4.b);
  ipA("-6", "route", "add", "default", "via", lab.v6.b);
  ipA("route", "add", NET.viaVeth, "via", lab.v4.b);
  // vxlan over the veth, with a gateway route behind it
  ipA(
    "link",
    "add",
    "vx0",
    "type",
    "vxlan",
    "id",
    "42",
    "dstport",
    "4789",
    "local",
    lab.v4.a,
    "dev",
    lab.ifA,
  );
  ipA("link", "set", "vx0", "up");
  ipA("addr", "add", "10.241.0.1/24", "dev", "vx0");
  ipA("-6", "addr", "add", "fd41::1/64", "dev", "vx0", "nodad");
  ipA("route", "add", NET.viaVxlan, "via", "10.241.0.2", "dev", "vx0");
  ipA("-6", "route", "add", NET.viaVxlan6, "via", "fd41::2", "dev", "vx0");
  // tun and tap: no program holds them, so they are up without carrier (linkdown routes count)
  ipA("tuntap", "add", "mode", "tun", "tun0");
  ipA("tuntap", "add", "mode", "tap", "tap0");
  ipA("link", "set", "tun0", "up");
  ipA("link", "set", "tap0", "up");
  ipA("route", "add", NET.viaTun, "dev", "tun0");
  ipA("-6", "route", "add", NET.viaTun6, "dev", "tun0");
  ipA("route", "add", NET.viaTap, "dev", "tap0");
  ipA("route", "add", "blackhole", NET.blackhole);
  ipA("route", "add", "unreachable", NET.unreachable);
  ipA("route", "add", "prohibit", NET.prohibit);
});

after(async () => {
  await mirror?.close();
  lab?.cleanup();
});

async function running(): Promise<RouteMirror> {
  const nsPath = `/run/netns/${lab.a}`;
  mirror ??= await startRouteMirror({
    netns: lab.a,
    events: (onChange) =>
      watchRtnl(["link", "address", "route", "rule"], onChange, { nsPath, quietMs: 50 }),
  });
  return mirror;
}

/** Resolves with the first snapshot after now that satisfies `done`. */
function changeWhere(
  m: RouteMirror,
  done: (s: RouteSnapshot) => boolean,
  timeoutMs = 5_000,
): Promise<RouteSnapshot> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error(`no matching route change within ${timeoutMs} ms`));
    }, timeoutMs);
    const off = m.onChange((s) => {
      if (!done(s)) return;
      clearTimeout(timer);
      off();
      resolve(s);
    });
  });
}

function ifindexOf(name: string): number {
  const out = JSON.parse(ipA("-j", "link", "show", "dev", name)) as { ifindex: number }[];
  return out[0]?.ifindex ?? -1;
}

/** What the kernel says (`ip route get` in the lab): the device, or null when it refuses. */
function routeGet(address: string): string | null {
  const r = spawnSync("ip", ["-n", lab.a, "-j", "route", "get", address], { encoding: "utf8" });
  if (r.status !== 0) return null;
  const out = JSON.parse(r.stdout) as { dev?: string }[];
  return out[0]?.dev ?? null;
}

const seen = (m: RouteMirror, address: string) => {
  const e = m.lookup(address);
  return e && { ifname: e.ifname, tunnel: e.tunnel, reject: e.reject };
};

test("each route: the interface and tunnel flag (veth, vxlan, tun, tap, reject, local)", async () => {
  const m = await running();
  const cases: [string, string, boolean][] = [
    ["198.51.100.7", lab.ifA, false], // default route
    ["10.246.3.4", lab.ifA, false],
    [lab.v4.b, lab.ifA, false],
    ["10.241.0.9", "vx0", true],
    ["10.242.77.1", "vx0", true],
    ["10.244.0.1", "tun0", true],
    ["10.245.200.200", "tap0", true],
    [lab.v4.a, "lo", false],
    ["10.241.0.1", "lo", false],
    ["127.0.0.1", "lo", false],
    ["2001:db8::1", lab.ifA, false],
    ["fd41::9", "vx0", true],
    ["fd42::1:0:0:1", "vx0", true],
    ["fd44::1", "tun0", true],
    ["fd41::1", "lo", false],
    ["::1", "lo", false],
    ["::ffff:10.244.1.1", "tun0", true],
  ];
  for (const [address, ifname, tunnel] of cases) {
    assert.deepEqual(seen(m, address), { ifname, tunnel, reject: false }, address);
    if (!address.startsWith("::ffff:")) assert.equal(routeGet(address), ifname, address);
    assert.equal(m.lookup(address)?.ifindex, ifindexOf(ifname), `${address} ifindex`);
  }
  for (const address of ["10.247.1.1", "10.248.1.1", "10.249.1.1"]) {
    assert.deepEqual(seen(m, address), { ifname: "", tunnel: false, reject: true }, address);
    assert.equal(m.lookup(address)?.ifindex, 0);
    assert.equal(routeGet(address), null, `the kernel refuses ${address} too`);
  }
  assert.ok(m.generation >= 1);
});

for (const o of OPTIONAL) {
  const name = o.present
    ? `${o.kind} link: routes through it are tunnelled`
    : `${o.kind} link: skipped, this kernel has no ${o.kind} link type (${o.config} not set)`;
  test(name, { skip: o.present ? false : `kernel lacks ${o.kind} (${o.config})` }, async () => {
    const m = await running();
    const dev = `${o.kind.slice(0, 3)}t0`;
    ipA("link", "add", dev, "type", o.kind, ...o.args);
    try {
      ipA("link", "set", dev, "up");
      const change = changeWhere(m, (s) => s.image.v4.some((e) => e.ifname === dev));
      ipA("route", "add", "10.250.0.0/16", "dev", dev);
      await change;
      assert.deepEqual(seen(m, "10.250.1.2"), { ifname: dev, tunnel: true, reject: false });
      assert.equal(routeGet("10.250.1.2"), dev);
    } finally {
      ipA("link", "del", dev);
    }
  });
}

test("a route added then removed while the mirror runs: onChange fires, lookup follows", async () => {
  const m = await running();
  const before = m.generation;
  assert.equal(seen(m, "10.251.0.1")?.ifname, lab.ifA, "default route first");

  let change = changeWhere(m, (s) =>
    s.image.v4.some((e) => e.ifname === "tun0" && e.addr[1] === 251),
  );
  ipA("route", "add", "10.251.0.0/16", "dev", "tun0");
  const added = await change;
  assert.ok(added.generation > before);
  assert.deepEqual(seen(m, "10.251.0.1"), { ifname: "tun0", tunnel: true, reject: false });

  change = changeWhere(m, (s) => !s.image.v4.some((e) => e.addr[1] === 251));
  ipA("route", "del", "10.251.0.0/16");
  const removed = await change;
  assert.ok(removed.generation > added.generation);
  assert.deepEqual(seen(m, "10.251.0.1"), { ifname: lab.ifA, tunnel: false, reject: false });
});

test("a tunnel link created and deleted while running: its routes appear and go", async () => {
  const m = await running();
  let change = changeWhere(m, (s) => s.links.some((l) => l.ifname === "tun1"));
  ipA("tuntap", "add", "mode", "tun", "tun1");
  ipA("link", "set", "tun1", "up");
  ipA("-6", "route", "add", "fd52::/48", "dev", "tun1");
  await change;
  await m.refresh(); // the route may have come in a later burst than the link
  assert.deepEqual(seen(m, "fd52::7"), { ifname: "tun1", tunnel: true, reject: false });

  change = changeWhere(m, (s) => !s.links.some((l) => l.ifname === "tun1"));
  ipA("link", "del", "tun1");
  await change;
  assert.deepEqual(seen(m, "fd52::7"), { ifname: lab.ifA, tunnel: false, reject: false });
});

// --- lookup vs the kernel on random addresses ---

const byte = fc.integer({ min: 0, max: 255 });
const group = fc.integer({ min: 0, max: 0xffff }).map((g) => g.toString(16));
const v4Random = fc.tuple(byte, byte, byte, byte).map((b) => b.join("."));
const v6Random = fc
  .array(group, { minLength: 8, maxLength: 8 })
  .map((g) => g.join(":"))
  // link-local leaves by the socket's scope id, ::ffff:0:0/96 is routed as IPv4 (both documented)
  .filter((a) => !/^fe[89ab]/.test(a) && !a.startsWith("0:0:0:0:0:ffff:"));

/** Addresses the lab's routes make interesting: inside each prefix, local, broadcast, loopback. */
function labAddresses(l: Lab): fc.Arbitrary<string> {
  const v4Net = l.v4.a.replace(/\.1$/, "");
  const v6Net = l.v6.a.replace(/::1$/, "");
  const v4Inside = fc
    .tuple(
      fc.constantFrom(
        "10.241.0",
        "10.242.9",
        "10.244.3",
        "10.245.7",
        "10.246.1",
        "10.247.2",
        v4Net,
        "127.0.3",
      ),
      byte,
    )
    .map(([hi, d]) => `${hi}.${d}`);
  const v6Inside = fc
    .tuple(
      fc.constantFrom("fd41:0:0:0", "fd42:0:0:7", "fd44:0:0:1", v6Net, "ff02:0:0:0"),
      group,
      group,
    )
    .map(([hi, x, y]) => `${hi}::${x}:${y}`);
  const special = fc.constantFrom(
    l.v4.a,
    l.v4.b,
    "10.241.0.1",
    "10.241.0.255",
    `${v4Net}.255`,
    "0.0.0.0",
    "255.255.255.255",
    "224.0.0.1",
    "::1",
    "fd41::1",
    l.v6.a,
    l.v6.b,
  );
  return fc.oneof(v4Random, v6Random, v4Inside, v6Inside, special);
}

test("lookup agrees with `ip route get` on 200 random addresses (v4 and v6)", async () => {
  const m = await running();
  await m.refresh();
  const agree = (address: string) => {
    const kernel = routeGet(address);
    const mine = m.lookup(address);
    if (kernel === null) return mine === null || mine.reject;
    return mine !== null && !mine.reject && mine.ifname === kernel;
  };
  fc.assert(
    fc.property(labAddresses(lab), (address) => {
      assert.ok(
        agree(address),
        `${address}: kernel ${routeGet(address)}, mirror ${JSON.stringify(seen(m, address))}`,
      );
    }),
    { numRuns: 200 },
  );
});

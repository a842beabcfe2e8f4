// The route image built from iproute2 dumps (no root): tunnel kinds, longest prefix, metrics,
// reject routes, the local table winning over main, multipath and policy-rule notes.
import { test } from "node:test";
import assert from "node:assert/strict";
import { buildImage, isTunnelLink, lookup, type NamespaceDump } from "../../src/route/index.ts";
import { parseLinks, parseRoutes, parseRules } from "../../src/route/ip-json.ts";

const link = (ifindex: number, ifname: string, kind: string, extra = {}) => ({
  ifindex,
  ifname,
  flags: ["UP"],
  link_type: "ether",
  ...(kind ? { linkinfo: { info_kind: kind } } : {}),
  ...extra,
});

const LINKS = JSON.stringify([
  { ...link(1, "lo", ""), flags: ["LOOPBACK", "UP"], link_type: "loopback" },
  link(2, "eth0", "veth"),
  link(3, "vx0", "vxlan"),
  { ...link(4, "tun0", "tun"), flags: ["POINTOPOINT", "NOARP", "UP"], link_type: "none" },
  // a wireguard-like link whose kind is not reported: classified by its flags
  { ...link(5, "wg9", ""), flags: ["POINTOPOINT", "NOARP", "UP"], link_type: "none" },
  { ...link(6, "ppp0", "ppp"), flags: ["POINTOPOINT", "NOARP", "UP"], link_type: "ppp" },
]);

function dump(main4: object[], local4: object[] = [], rules4: object[] = []): NamespaceDump {
  return {
    links: parseLinks(LINKS),
    main4: parseRoutes(JSON.stringify(main4)),
    main6: parseRoutes(
      JSON.stringify([
        { dst: "default", gateway: "fd00::2", dev: "eth0", metric: 1024, flags: [] },
        { dst: "fd10::/48", dev: "vx0", metric: 1024, flags: [] },
      ]),
    ),
    local4: parseRoutes(JSON.stringify(local4)),
    local6: parseRoutes(
      JSON.stringify([{ type: "local", dst: "fd00::1", dev: "eth0", flags: [] }]),
    ),
    rules4: parseRules(JSON.stringify(rules4)),
    rules6: [],
  };
}

const MAIN4 = [
  { dst: "default", gateway: "10.0.0.2", dev: "eth0", flags: [] },
  { dst: "10.0.0.0/24", dev: "eth0", scope: "link", flags: [] },
  { dst: "10.1.0.0/16", gateway: "10.2.0.2", dev: "vx0", flags: [] },
  { dst: "10.1.5.0/24", dev: "eth0", flags: [] },
  { dst: "10.3.0.0/16", dev: "tun0", flags: ["linkdown"] },
  { dst: "10.4.0.0/16", dev: "wg9", flags: [] },
  { type: "blackhole", dst: "10.5.0.0/16", flags: [] },
  { type: "unreachable", dst: "10.6.0.0/16", flags: [] },
  { type: "prohibit", dst: "10.7.0.0/16", flags: [] },
  { dst: "10.8.0.0/16", dev: "eth0", metric: 100, flags: [] },
  { dst: "10.8.0.0/16", dev: "tun0", metric: 50, flags: [] },
  {
    dst: "10.9.0.0/16",
    flags: [],
    nexthops: [
      { dev: "tun0", flags: ["dead", "linkdown"] },
      { gateway: "10.0.0.3", dev: "vx0", flags: [] },
      { gateway: "10.0.0.4", dev: "eth0", flags: [] },
    ],
  },
  { dst: "10.10.0.0/16", dev: "vx0", tos: "0x10", flags: [] },
  { dst: "127.1.0.0/16", dev: "eth0", flags: [] },
];
const LOCAL4 = [
  { type: "local", dst: "10.0.0.1", dev: "eth0", flags: [] },
  { type: "broadcast", dst: "10.0.0.255", dev: "eth0", flags: [] },
  { type: "local", dst: "127.0.0.0/8", dev: "lo", flags: [] },
];

const route = (image: ReturnType<typeof buildImage>["image"], addr: string) => {
  const e = lookup(image, addr);
  return e && { ifname: e.ifname, ifindex: e.ifindex, tunnel: e.tunnel, reject: e.reject };
};

test("tunnel kinds: vxlan, tun, flag-classified wireguard; veth and ppp are not tunnels", () => {
  const { links } = buildImage(dump(MAIN4, LOCAL4));
  assert.deepEqual(
    links.map((l) => [l.ifname, l.tunnel]),
    [
      ["lo", false],
      ["eth0", false],
      ["vx0", true],
      ["tun0", true],
      ["wg9", true],
      ["ppp0", false],
    ],
  );
  for (const kind of ["wireguard", "gre", "gretap", "ip6gre", "ipip", "sit", "ip6tnl", "geneve"])
    assert.equal(isTunnelLink({ kind, linkType: "ether", flags: [] }), true, kind);
  assert.equal(isTunnelLink({ kind: "", linkType: "gre", flags: [] }), true);
  assert.equal(isTunnelLink({ kind: "bridge", linkType: "ether", flags: [] }), false);
});

test("longest prefix, metric order, reject routes, linkdown still used (as the kernel does)", () => {
  const { image } = buildImage(dump(MAIN4, LOCAL4));
  assert.deepEqual(route(image, "8.8.8.8"), {
    ifname: "eth0",
    ifindex: 2,
    tunnel: false,
    reject: false,
  });
  assert.equal(route(image, "10.1.2.3")?.ifname, "vx0");
  assert.equal(route(image, "10.1.2.3")?.tunnel, true);
  assert.equal(route(image, "10.1.5.9")?.ifname, "eth0"); // the /24 inside the vxlan /16
  assert.equal(route(image, "10.3.0.1")?.ifname, "tun0");
  assert.equal(route(image, "10.4.0.1")?.tunnel, true);
  for (const a of ["10.5.1.1", "10.6.1.1", "10.7.1.1"])
    assert.deepEqual(route(image, a), { ifname: "", ifindex: 0, tunnel: false, reject: true }, a);
  assert.equal(route(image, "10.8.0.1")?.ifname, "tun0", "lowest metric wins");
  assert.equal(route(image, "10.10.0.1")?.ifname, "eth0", "a tos route does not match tos 0");
  assert.equal(route(image, "::ffff:10.1.2.3")?.ifname, "vx0", "v4-mapped is looked up as v4");
  assert.equal(route(image, "fd10:0:0:1::5")?.ifname, "vx0");
  assert.equal(route(image, "2001:db8::1")?.ifname, "eth0");
});

test("the local table: same prefix wins over main, v6 local wins over longer main; 0.0.0.0, :: local", () => {
  const { image } = buildImage(dump(MAIN4, LOCAL4));
  assert.equal(route(image, "10.0.0.1")?.ifname, "lo");
  assert.equal(route(image, "10.0.0.255")?.ifname, "eth0", "broadcast leaves by its device");
  // IPv4 with only the default rules keeps local and main in one trie: the longer prefix wins
  assert.equal(route(image, "127.1.2.3")?.ifname, "eth0");
  assert.equal(route(image, "fd00::1")?.ifname, "lo", "v6 local routes name the device, not lo");
  assert.equal(route(image, "0.0.0.0")?.ifname, "lo");
  assert.equal(route(image, "::")?.ifname, "lo");
});

test("multipath takes the first live nexthop and says so; policy rules are reported", () => {
  const rules = [
    { priority: 0, src: "all", table: "local" },
    { priority: 100, src: "all", fwmark: "0x1", table: "51820" },
    { priority: 32766, src: "all", table: "main" },
    { priority: 32767, src: "all", table: "default" },
  ];
  const { image, notes } = buildImage(dump(MAIN4, LOCAL4, rules));
  assert.equal(route(image, "10.9.1.1")?.ifname, "vx0");
  assert.ok(
    notes.some((n) => n.prefix === "10.9.0.0/16" && /first nexthop \(vx0\)/.test(n.reason)),
  );
  assert.ok(notes.some((n) => n.prefix === "10.10.0.0/16" && /tos/.test(n.reason)));
  assert.ok(
    notes.some((n) => n.family === 4 && /100:51820/.test(n.reason)),
    JSON.stringify(notes),
  );
  // with rules, IPv4 looks up the local table first: local 127/8 shadows main 127.1/16
  assert.equal(route(image, "127.1.2.3")?.ifname, "lo");
  const plain = buildImage(
    dump(
      MAIN4,
      LOCAL4,
      rules.filter((r) => r.priority !== 100),
    ),
  );
  assert.ok(!plain.notes.some((n) => /policy routing/.test(n.reason)));
});

test("no route: null; entries are network order with host bits cleared", () => {
  const { image } = buildImage(dump([{ dst: "10.1.0.0/16", dev: "vx0", flags: [] }]));
  assert.equal(lookup(image, "192.0.2.1"), null);
  assert.equal(lookup(image, "not an address"), null);
  const e = image.v4.find((x) => x.prefixlen === 16);
  assert.deepEqual([...(e?.addr ?? [])], [10, 1, 0, 0]);
  assert.equal(lookup(image, new Uint8Array([10, 1, 200, 7]))?.ifname, "vx0");
});

test("a full routing table (300,000 routes, as a router with BGP has) builds", () => {
  const routes = Array.from({ length: 300_000 }, (_, i) => ({
    dst: `${11 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}.0/24`,
    gateway: "10.0.0.2",
    dev: "eth0",
    flags: [],
  }));
  const { image } = buildImage(dump([...MAIN4, ...routes]));
  assert.ok(image.v4.length > 300_000);
  assert.equal(lookup(image, "13.1.2.3")?.ifname, "eth0");
});

test("a macvlan keeps its lower device and its MAC address; a veth does not", () => {
  const links = parseLinks(
    JSON.stringify([
      link(2, "eth0", "veth", { address: "02:00:00:00:00:02" }),
      link(5, "mv0", "macvlan", { link: "eth0", address: "02:AB:00:00:00:05" }),
    ]),
  );
  const none = { main4: [], main6: [], local4: [], local6: [], rules4: [], rules6: [] };
  const img = buildImage({ links, ...none });
  const byName = new Map(img.links.map((l) => [l.ifname, l]));
  assert.equal(byName.get("mv0")?.lower, "eth0");
  assert.equal(byName.get("mv0")?.mac, "02:ab:00:00:00:05");
  assert.equal(byName.get("eth0")?.lower, undefined);
  assert.equal(byName.get("eth0")?.mac, undefined);
});

// The DNS lab on its own, without moat: every resolver answers what the zone says, and every
// client resolves through it and connects. The tests of DNS names (dns-names.test.ts) stand on
// these pieces; when one of those fails, this file tells whether the lab or moat is at fault.
import { test } from "node:test";
import assert from "node:assert/strict";
import { startPeerServers } from "../helpers/moat-lab.ts";
import { createLab } from "../helpers/netns.ts";
import { startDnsPeers, STUB } from "../helpers/dns-lab.ts";
import {
  curl,
  curlByIp,
  dig,
  kdig,
  pyConnect,
  pyHold,
  pyRace,
  pySteps,
} from "../helpers/dns-clients.ts";

test("the DNS lab: resolvers, stub and clients work without moat", async (t) => {
  const lab = createLab(t.name);
  t.after(() => lab.cleanup());
  const http = await startPeerServers(lab, ["tcp:80"]);
  t.after(() => http.kill());
  const dns = await startDnsPeers(lab);
  t.after(() => dns.close());
  const { zone, resolv } = dns;
  const client = { ns: lab.b, cgroupDir: null };

  await t.test("the upstream serves the zone: names, the CNAME chain, the apex, depth", () => {
    for (const [name, ip] of [
      ["allowed.moat.test", zone.allowed],
      ["other.moat.test", zone.allowed],
      ["a.b.deep.moat.test", zone.deep],
      ["moat.test", zone.apex],
      ["r7.race.moat.test", zone.race(7).ip],
    ] as const) {
      const r = dig(client, zone.upstream, name);
      assert.equal(r.rcode, "NOERROR", r.stdout);
      assert.deepEqual(r.addresses, [ip], name);
      assert.match(r.stdout, /\sIN\s+A\s/);
    }
    const chain = dig(client, zone.upstream, "cname.moat.test");
    assert.deepEqual(chain.cnames, ["cname.moat.test -> allowed.moat.test"]);
    assert.deepEqual(chain.addresses, [zone.allowed]);
    assert.equal(dig(client, zone.upstream, "nothing.moat.test").rcode, "NXDOMAIN");
    assert.match(dig(client, zone.upstream, "allowed.moat.test").stdout, /\s1\s+IN\s+A\s/, "TTL 1");
  });

  await t.test("a big answer: truncated over UDP without EDNS, whole over TCP", () => {
    const r = dig(client, STUB, "big.moat.test", ["+noedns"]);
    assert.ok(r.retriedOverTcp, r.stdout);
    assert.equal(r.addresses.length, zone.big.length);
    const size = Number(/MSG SIZE\s+rcvd: (\d+)/.exec(r.stdout)?.[1]);
    assert.ok(size > 512, `the answer has ${size} bytes`);
  });

  await t.test("unbound and the untrusted server answer; kdig asks them", () => {
    assert.deepEqual(kdig(client, zone.unbound, "allowed.moat.test").addresses, [zone.allowed]);
    assert.deepEqual(dig(client, zone.unbound, "a.b.deep.moat.test").addresses, [zone.deep]);
    assert.deepEqual(dig(client, zone.untrusted, "allowed.moat.test").addresses, [
      zone.untrustedAnswer,
    ]);
    assert.deepEqual(kdig(client, STUB, "cname.moat.test").addresses, [zone.allowed]);
  });

  await t.test("curl and python3 resolve through a resolv.conf of their own and connect", () => {
    const c = curl(client, resolv.stub, "http://allowed.moat.test/");
    assert.equal(c.status, 0, c.stderr);
    assert.equal(c.stdout, "port 80\n");
    assert.equal(curlByIp(client, `http://${zone.deep}/`).stdout, "port 80\n");
    assert.equal(curl(client, resolv.stub, "http://nothing.moat.test/").status, 6, "no name");
    const viaUnbound = curl(client, resolv.unbound, "http://a.b.deep.moat.test/");
    assert.equal(viaUnbound.status, 0, viaUnbound.stderr);
    assert.deepEqual(pyConnect(client, resolv.stub, "cname.moat.test", 80), {
      result: "connected",
      addr: zone.allowed,
      addrs: [zone.allowed],
    });
    const untrusted = pyConnect(client, resolv.untrusted, "allowed.moat.test", 80);
    assert.equal(untrusted.addr, zone.untrustedAnswer);
    assert.equal(untrusted.result, "connected");
    // glibc asks without EDNS: the big answer comes over TCP
    const big = pyConnect(client, resolv.stub, "big.moat.test", 80);
    assert.equal(big.result, "connected");
    assert.equal(big.addrs?.length, zone.big.length);
  });

  await t.test("the race client resolves new names and connects at once", async () => {
    const r = await pyRace(client, resolv.stub, 0, 50, 80);
    assert.equal(r.done, 50);
    assert.deepEqual(r.failed, []);
  });

  await t.test("the steps client: lookups and connects by IP in one process", () => {
    const r = pySteps(client, resolv.stub, 80, [
      "L:cname.moat.test",
      `C:${zone.deep}`,
      "L:nothing.moat.test",
    ]);
    assert.deepEqual(r, [
      { step: "L:cname.moat.test", ok: true, addrs: [zone.allowed] },
      { step: `C:${zone.deep}`, result: "connected" },
      { step: "L:nothing.moat.test", ok: false, addrs: [] },
    ]);
  });

  await t.test("a held connection; the same process connects again by IP", async () => {
    const holder = await pyHold(client, resolv.stub, "allowed.moat.test", 80);
    t.after(() => holder.close());
    assert.equal(holder.first.result, "connected");
    assert.equal((await holder.again()).result, "connected");
  });
});

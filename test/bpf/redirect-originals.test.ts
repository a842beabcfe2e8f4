// The original destination of a redirected client as the proxies read it (Datapath.originalOf),
// from the kernel's `originals` map, records written as the socket hooks key them: by the client's
// bound address and port, else (a socket bound to no address) by its port alone. Lookups one after
// another, for other clients, never answer with a record that is not their own.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  client,
  original as originalCodec,
  owner as ownerCodec,
  redirect,
} from "../../src/datapath/abi.ts";
import { mappedAddress } from "../../src/datapath/address.ts";
import type { BpfMap } from "../../src/datapath/native.d.ts";
import { KernelLab } from "../helpers/kernel-lab.ts";

const UDP = 17;
const TCP = 6;

/**
 * A key as the kernel writes it (null: the socket was bound to no address; netns: the client's
 * namespace, when its proxy's socket is in that one).
 */
function key(ip: string | null, port: number, protocol: number, netns = 0n): Buffer {
  return client.encode({
    addr: ip === null ? Buffer.alloc(16) : mappedAddress(ip),
    port,
    protocol,
    netns,
  });
}

function record(server: string, port: number, pid: number): Buffer {
  const o = ownerCodec.encode({
    pid,
    uid: 1000,
    cgroup_id: 7n,
    comm: Buffer.from("dig"),
  });
  const target = redirect.encode({ addr: mappedAddress("127.0.0.1"), port: 5353, family: 4 });
  return originalCodec.encode({
    addr: mappedAddress(server),
    port,
    family: 4,
    protocol: UDP,
    redirect: 0,
    generation: 1,
    target,
    owner: o,
  });
}

describe("the original destinations of redirected clients", () => {
  let lab: KernelLab;
  let originals: BpfMap;
  before(() => {
    lab = new KernelLab();
    originals = lab.dp.object.map("originals");
  });
  after(() => lab.close());

  test("each client's original destination, by its address, else by its port alone", () => {
    // a client bound to 127.0.0.1:40001 and one bound to no address on 40002 (udp), one on 40003
    // over tcp
    originals.update(key("127.0.0.1", 40001, UDP), record("192.0.2.1", 53, 101));
    originals.update(key(null, 40002, UDP), record("192.0.2.2", 53, 102));
    originals.update(key("10.0.0.9", 40003, TCP), record("192.0.2.3", 853, 103));
    const asks: [string, number, "udp" | "tcp", string | null, number | null][] = [
      ["127.0.0.1", 40001, "udp", "192.0.2.1", 101],
      ["127.0.0.1", 40002, "udp", "192.0.2.2", 102],
      ["10.0.0.9", 40003, "tcp", "192.0.2.3", 103],
      // the tcp client's port over udp, the udp one's over tcp: no record of theirs
      ["10.0.0.9", 40003, "udp", null, null],
      ["127.0.0.1", 40002, "tcp", null, null],
      // another address on the first client's port: not its record (it was bound to its address)
      ["127.0.0.2", 40001, "udp", null, null],
      ["127.0.0.2", 40002, "udp", "192.0.2.2", 102],
      ["::1", 40002, "udp", "192.0.2.2", 102],
      ["::1", 40001, "udp", null, null],
    ];
    // twice over, in turn: no lookup is answered from the one before
    for (const round of [1, 2])
      for (const [ip, port, protocol, server, pid] of asks) {
        const found = lab.dp.originalOf({ ip, port }, protocol);
        const what = `${ip}:${port}/${protocol}, round ${round}`;
        assert.equal(found?.original.ip ?? null, server, what);
        assert.equal(found?.owner?.pid ?? null, pid, what);
        if (found) assert.deepEqual(found.target, { ip: "127.0.0.1", port: 5353 }, what);
      }
  });

  test("clients of two network namespaces on one port: each proxy socket reads its own", () => {
    // moat's namespace (0) and two containers', each with a client bound to no address on 40020
    const [c1, c2] = [4097n, 8193n];
    originals.update(key(null, 40020, UDP), record("192.0.2.1", 53, 301));
    originals.update(key(null, 40020, UDP, c1), record("192.0.2.2", 53, 302));
    originals.update(key(null, 40020, UDP, c2), record("192.0.2.3", 53, 303));
    const peer = { ip: "127.0.0.1", port: 40020 };
    for (const [netns, pid] of [
      [0n, 301],
      [c1, 302],
      [c2, 303],
      [c2, 303],
      [0n, 301],
      [c1, 302],
    ] as const)
      assert.equal(lab.dp.originalOf(peer, "udp", netns)?.owner?.pid, pid, `netns ${netns}`);
    // a namespace with no client on that port: none
    assert.equal(lab.dp.originalOf(peer, "udp", 12289n), null);
    for (const netns of [0n, c1, c2]) originals.delete(key(null, 40020, UDP, netns));
  });

  test("a client that asks another server from the same socket is read with that server", () => {
    const peer = { ip: "127.0.0.1", port: 40010 };
    // the kernel writes the client's record again at each send: another server, another process
    // (the port reused), then the first server again
    const sends: [string, number][] = [
      ["192.0.2.1", 201],
      ["192.0.2.1", 201],
      ["198.51.100.9", 201],
      ["198.51.100.9", 202],
      ["192.0.2.1", 201],
    ];
    const seen: unknown[] = [];
    for (const [server, pid] of sends) {
      originals.update(key(null, peer.port, UDP), record(server, 53, pid));
      const found = lab.dp.originalOf(peer, "udp");
      assert.equal(found?.original.ip, server);
      assert.equal(found?.owner?.pid, pid);
      seen.push(found);
    }
    // nothing read can be changed by whoever holds it
    const found = seen[0] as { original: { ip: string } };
    assert.throws(() => {
      found.original.ip = "203.0.113.1";
    }, TypeError);
    // gone from the map: not found, whatever was read before
    originals.delete(key(null, peer.port, UDP));
    assert.equal(lab.dp.originalOf(peer, "udp"), null);
  });
});

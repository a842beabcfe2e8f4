// The daemon's half of the post-route check: which events make it destroy a socket, and with
// which tuple (the kernel's SOCK_DESTROY itself is exercised by test/e2e/post-route.test.ts).
import { test } from "node:test";
import assert from "node:assert/strict";
import { event as eventCodec, EventType, Hook } from "../../src/datapath/abi.ts";
import { decodeEvent } from "../../src/datapath/events.ts";
import { formatEventLine } from "../../src/datapath/event.ts";
import { destroyBlockedSocket } from "../../src/datapath/post-route.ts";
import type { SocketTuple } from "../../src/datapath/native.d.ts";

const mapped = (ip: string) =>
  Buffer.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, ...ip.split(".").map(Number)]);

const record = (over: Partial<Parameters<typeof eventCodec.encode>[0]> = {}) =>
  eventCodec.encode({
    local: mapped("10.66.0.1"),
    remote: mapped("10.231.7.1"),
    local_port: 40122,
    remote_port: 80,
    ifindex: 9,
    rule: 0,
    generation: 1,
    type: EventType.blocked,
    verdict: EventType.blocked,
    hook: Hook.postRoute,
    family: 4,
    protocol: 6,
    direction: 1,
    mode: 2,
    reason: 1,
    ...over,
  });

function fakeAddon(answer: boolean | Error) {
  const calls: SocketTuple[] = [];
  const addon = () => ({
    sockDestroy(s: SocketTuple) {
      calls.push(s);
      if (answer instanceof Error) throw answer;
      return answer;
    },
  });
  return { calls, addon };
}

test("a post-route block of a tcp connection destroys its socket by tuple and interface", () => {
  const { calls, addon } = fakeAddon(true);
  assert.deepEqual(destroyBlockedSocket(record(), addon), { destroyed: true });
  assert.equal(calls.length, 1);
  const c = calls[0]!;
  assert.equal(c.family, 4);
  assert.equal(c.protocol, 6);
  assert.deepEqual([...c.local.subarray(12)], [10, 66, 0, 1]);
  assert.deepEqual([...c.remote.subarray(12)], [10, 231, 7, 1]);
  assert.equal(c.localPort, 40122);
  assert.equal(c.remotePort, 80);
  assert.equal(c.ifindex, 9);
});

test("other events destroy nothing", () => {
  const { calls, addon } = fakeAddon(true);
  for (const over of [
    { hook: Hook.connect }, // refused at connect(): no socket to destroy
    { hook: Hook.tcEgress },
    { type: EventType.detected, verdict: EventType.detected }, // detect mode passes
    { protocol: 17 }, // udp: the drop already failed the send with EPERM
  ])
    assert.equal(destroyBlockedSocket(record(over), addon), null);
  assert.equal(calls.length, 0);
});

test("a socket gone already, or a kernel without SOCK_DESTROY, is reported, not thrown", () => {
  assert.deepEqual(destroyBlockedSocket(record(), fakeAddon(false).addon), { destroyed: false });
  const unsupported = Object.assign(new Error("SOCK_DESTROY failed"), { code: "EOPNOTSUPP" });
  const r = destroyBlockedSocket(record(), fakeAddon(unsupported).addon);
  assert.equal(r?.destroyed, false);
  assert.equal(r?.error, unsupported);
});

test("the event names the hook and says it was judged after routing", () => {
  const ev = decodeEvent(record(), {
    bootTimeMs: 0,
    rule: () => ({ name: "no-evil" }),
    interfaceName: (i) => (i === 9 ? "evil0" : null),
  });
  assert.equal(ev.hook, "post_route");
  assert.equal(ev.interface, "evil0");
  assert.match(
    formatEventLine(ev),
    /BLOCKED egress tcp 10\.66\.0\.1:40122 -> 10\.231\.7\.1:80 on evil0 by rule no-evil \(after routing\)$/,
  );
});

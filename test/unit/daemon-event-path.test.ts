// The daemon's event path: kernel records decoded with the names of the generation that judged
// them (rules and redirects of recent generations, interfaces made after start), pushed on; a
// post-route block's socket destroyed first (a failure to do so warned about once); losses
// reported as one warning line when the kernel's loss counters grew, and at close.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  event as eventCodec,
  EventType,
  Hook,
  Mode,
  owner as ownerCodec,
} from "../../src/datapath/abi.ts";
import type { MoatEvent } from "../../src/datapath/event.ts";
import { GenerationRecord } from "../../src/datapath/generations.ts";
import type { ImageRule } from "../../src/policy/compile/image.ts";
import type { PacketCounts } from "../../src/observe/loss-report.ts";
import { startEventPath, type EventPathOptions } from "../../src/daemon/event-path.ts";

const mapped = (ip: string) =>
  Buffer.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, ...ip.split(".").map(Number)]);

const record = (over: Partial<Parameters<typeof eventCodec.encode>[0]> = {}) =>
  eventCodec.encode({
    local: mapped("10.66.0.1"),
    remote: mapped("10.231.7.1"),
    local_port: 40122,
    remote_port: 80,
    ifindex: 2,
    rule: 0,
    generation: 1,
    type: EventType.allowed,
    verdict: EventType.allowed,
    hook: Hook.tcEgress,
    family: 4,
    protocol: 6,
    direction: 1,
    mode: Mode.prevent,
    reason: 0,
    ...over,
  });

const rule = (name: string): ImageRule => ({
  name,
  action: "allow",
  mode: "prevent",
  log: true,
  maxDurationSeconds: 0,
});

function harness(over: Partial<EventPathOptions> = {}) {
  const contents = new GenerationRecord();
  let deliver: (record: Buffer) => void = () => assert.fail("not subscribed");
  const counts: PacketCounts = { eventLost: { packets: 0n }, ctFull: { packets: 0n } };
  const events: MoatEvent[] = [];
  const lines: string[] = [];
  const nics = [{ name: "eth0", ifindex: 2 }];
  const path = startEventPath({
    source: {
      contents,
      subscribe: (onRecord) => (deliver = onRecord),
      counters: () => structuredClone(counts),
    },
    push: (e) => events.push(e),
    process: (o) => ({
      pid: o.pid,
      name: o.comm,
      path: "",
      user: o.uid,
      cgroup: "",
      container: null,
    }),
    interfaces: () => nics,
    destroy: () => null,
    log: (l) => lines.push(l),
    bootTimeMs: 0,
    namesRereadMs: 0,
    ...over,
  });
  return { contents, deliver: (r: Buffer) => deliver(r), counts, events, lines, nics, path };
}

test("an event names the rule and the redirect of the generation that judged it", (t) => {
  const h = harness();
  t.after(() => h.path.close());
  h.contents.record(1, {
    rules: [rule("web-old")],
    redirects: [
      { name: "proxy-old", ip: "127.0.0.1", family: 4, port: 3128, unavailable: "block" },
    ],
  });
  h.contents.record(2, { rules: [rule("web")], redirects: [] });
  h.deliver(record({ generation: 1, redirect: 1 }));
  h.deliver(record({ generation: 2 }));
  h.deliver(record({ generation: 2, rule: 7 }));
  assert.equal(h.events[0]?.rule, "web-old");
  assert.deepEqual(h.events[0]?.redirect, {
    name: "proxy-old",
    to: { ip: "127.0.0.1", port: 3128 },
  });
  assert.equal(h.events[1]?.rule, "web");
  assert.equal(h.events[2]?.rule, "#7", "an index the generation does not have");
  assert.equal(h.events[0]?.interface, "eth0");
});

test("an interface made after start is named on its first event", (t) => {
  const h = harness();
  t.after(() => h.path.close());
  h.nics.push({ name: "wg0", ifindex: 9 });
  h.deliver(record({ ifindex: 9 }));
  assert.equal(h.events[0]?.interface, "wg0");
});

test("a post-route block destroys its socket before the event goes on; a failure is warned once", (t) => {
  const order: string[] = [];
  const h = harness({
    destroy: () => {
      order.push("destroy");
      return { destroyed: false, error: new Error("Operation not supported") };
    },
    push: () => order.push("push"),
  });
  t.after(() => h.path.close());
  h.deliver(record({ hook: Hook.postRoute, type: EventType.blocked }));
  h.deliver(record({ hook: Hook.postRoute, type: EventType.blocked }));
  assert.deepEqual(order, ["destroy", "push", "destroy", "push"]);
  const warnings = h.lines.filter((l) => l.includes("could not be destroyed"));
  assert.equal(warnings.length, 1);
  assert.match(warnings[0] ?? "", /Operation not supported/);
});

test("losses are reported when the kernel's counters grew, and at close", () => {
  const h = harness();
  h.path.reportLoss();
  assert.deepEqual(h.lines, [], "nothing lost, nothing said");
  h.counts.eventLost = { packets: 3n };
  h.path.reportLoss();
  assert.deepEqual(h.lines, ["warning: 3 events lost (ring buffer full)"]);
  h.counts.ctFull = { packets: 2n };
  h.path.close();
  assert.equal(h.lines[1], "warning: 2 connections judged without tracking (conntrack table full)");
});

test("a connection event carries the names its owner learned for the remote address", (t) => {
  const asked: [number, string][] = [];
  const h = harness({
    names: (owner, ip) => {
      asked.push([owner.pid, ip]);
      return ip === "10.231.7.1" ? ["github.com"] : [];
    },
  });
  t.after(() => h.path.close());
  const owner = (pid: number) =>
    ownerCodec.encode({
      cgroup_id: 7n,
      exe_ino: 0n,
      exe_dev: 0,
      pid,
      uid: 1000,
      comm: Buffer.from("curl"),
    });
  h.deliver(record({ owner: owner(812) }));
  h.deliver(record({ owner: owner(813), remote: mapped("10.231.7.2") }));
  h.deliver(record()); // no owner: no socket hook saw it, no names asked
  assert.deepEqual(asked, [
    [812, "10.231.7.1"],
    [813, "10.231.7.2"],
  ]);
  assert.deepEqual(
    h.events.map((e) => e.remote),
    [
      { ip: "10.231.7.1", port: 80, names: ["github.com"] },
      { ip: "10.231.7.2", port: 80 },
      { ip: "10.231.7.1", port: 80 },
    ],
  );
});

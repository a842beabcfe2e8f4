// The daemon's ids path on hand-made kernel copies of UDP flows: each datagram is matched alone,
// as Suricata does (offset/depth/distance count from the datagram's start, a content split over
// two datagrams is not one, a negated content is judged on the datagram), and flow:established
// fits a UDP datagram once both directions of its flow were seen.
import { test } from "node:test";
import assert from "node:assert/strict";
import { idsRecord, IdsConst, EventType, Hook } from "../../src/datapath/abi.ts";
import { mappedAddress } from "../../src/datapath/address.ts";
import type { MoatEvent } from "../../src/datapath/index.ts";
import { parsePolicy } from "../../src/config/index.ts";
import { textOnlyHost } from "../../src/config/parse.ts";
import { startIdsPath } from "../../src/daemon/ids-path.ts";

/** A kernel copy of a UDP datagram of flow `connId` (its bytes at `offset` of its direction). */
function datagram(connId: bigint, toServer: boolean, offset: number, text: string): Buffer {
  const data = Buffer.from(text, "latin1");
  const whole = idsRecord.encode({
    ts_ns: 1_000_000n,
    conn_id: connId,
    local: mappedAddress("10.0.0.1"),
    remote: mappedAddress("192.0.2.7"),
    local_port: 53,
    remote_port: 20000 + Number(connId),
    rule: 0,
    generation: 1,
    ifindex: 2,
    offset,
    len: data.length,
    family: 4,
    protocol: 17,
    direction: 0,
    to_server: toServer ? 1 : 0,
    hook: Hook.xdpIngress,
    verdict: EventType.allowed,
    urgent: 0,
    flags: offset === 0 ? IdsConst.first : 0,
  });
  data.copy(whole, IdsConst.header);
  return whole.subarray(0, IdsConst.header + data.length);
}

/** The path with these signatures; sends a flow's datagrams, each at the bytes copied before it. */
function lab(rules: string[]) {
  const model = parsePolicy(
    `version: 1\nmode: detect\nids:\n  rules:\n${rules.map((r) => `    - '${r}'\n`).join("")}`,
    "p.yaml",
    textOnlyHost,
  );
  assert.equal(model.ids?.signatures.length, rules.length);
  const events: MoatEvent[] = [];
  let deliver: (r: Buffer) => void = () => {};
  startIdsPath({
    source: { subscribeIds: (on) => (deliver = on) },
    model: () => model,
    push: (e) => events.push(e),
    process: () => {
      throw new Error("no owner in these copies");
    },
    cut: () => true,
    bootTimeMs: 0,
    now: () => 0,
    monotonicNs: () => 0n,
  });
  const copied = new Map<string, number>();
  const send = (connId: bigint, toServer: boolean, text: string) => {
    const key = `${connId}:${toServer}`;
    const offset = copied.get(key) ?? 0;
    copied.set(key, offset + text.length);
    deliver(datagram(connId, toServer, offset, text));
  };
  /** [connection, rule, flow] of each event. */
  const seen = () => events.map((e) => [e.connection, e.rule, e.ids?.flow]);
  return { send, seen };
}

test("UDP: each datagram is matched alone, from its own first byte", () => {
  const l = lab([
    'alert udp any any -> any any (msg:"split"; content:"SPLITUDP"; sid:1;)',
    'alert udp any any -> any any (msg:"second"; content:"DGRAM2"; depth:6; sid:2;)',
    'alert udp any any -> any any (msg:"no Host"; content:"UNEG"; content:!"Host"; sid:3;)',
    'alert udp any any -> any any (msg:"two"; content:"AAA"; content:"BBB"; distance:0; sid:4;)',
  ]);
  l.send(1n, true, "xxSPLIT");
  l.send(1n, true, "UDPxx");
  assert.deepEqual(l.seen(), [], "a content split over two datagrams is not one");
  l.send(2n, true, "first");
  l.send(2n, true, "DGRAM2 rest");
  assert.deepEqual(l.seen(), [["2", "ids:2", "to_server"]], "depth counts from the datagram");
  l.send(3n, true, "UNEG a");
  assert.deepEqual(
    l.seen().slice(1),
    [["3", "ids:3", "to_server"]],
    "the datagram is whole: no Host in it, judged at once",
  );
  l.send(3n, true, "Host");
  l.send(4n, true, "AAA");
  l.send(4n, true, "BBB");
  l.send(4n, true, "AAA BBB");
  assert.deepEqual(l.seen().slice(2), [["4", "ids:4", "to_server"]], "both in one datagram");
});

test("UDP: flow:established fits once both directions were seen; only_stream never (as Suricata)", () => {
  const l = lab([
    'alert udp any any -> any any (msg:"est"; flow:established; content:"EST"; sid:4;)',
    'alert udp any any -> any any (msg:"est to server"; flow:established,to_server; content:"EST"; sid:5;)',
    'alert udp any any -> any any (msg:"stream"; flow:only_stream; content:"EST"; sid:6;)',
    'alert udp any any -> any any (msg:"est to client"; flow:established,to_client; content:"EST"; sid:7;)',
  ]);
  l.send(1n, true, "EST one");
  assert.deepEqual(l.seen(), [], "one direction only: not established");
  l.send(2n, true, "EST one");
  l.send(2n, false, "reply");
  l.send(2n, true, "EST two");
  assert.deepEqual(l.seen(), [
    ["2", "ids:4", "to_server"],
    ["2", "ids:5", "to_server"],
  ]);
  l.send(3n, true, "EST one");
  l.send(3n, false, "EST reply");
  assert.deepEqual(l.seen().slice(2), [
    ["3", "ids:4", "to_client"],
    ["3", "ids:7", "to_client"],
  ]);
});

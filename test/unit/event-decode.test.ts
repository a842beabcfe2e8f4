// Decoding a kernel event record reads its fields in place: the time (ns since boot -> wall
// clock, whole milliseconds, rounded down) and the connection id (hex) are exact across the
// whole u64 range, addresses of both families read from the record, the owner only when one was
// recorded, and a closed event's counts as before.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  event as eventCodec,
  EventType,
  Hook,
  owner as ownerCodec,
} from "../../src/datapath/abi.ts";
import { decodeEvent } from "../../src/datapath/events.ts";

const v6 = (text: string) => {
  const groups = text.split(":").map((g) => parseInt(g, 16));
  return Buffer.from(groups.flatMap((g) => [g >> 8, g & 255]));
};
const mapped = (ip: string) =>
  Buffer.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, ...ip.split(".").map(Number)]);

const record = (over: Partial<Parameters<typeof eventCodec.encode>[0]> = {}) =>
  eventCodec.encode({
    local: mapped("10.0.0.1"),
    remote: mapped("192.0.2.7"),
    local_port: 22,
    remote_port: 51000,
    rule: 0,
    generation: 3,
    type: EventType.blocked,
    verdict: EventType.blocked,
    hook: Hook.xdpIngress,
    family: 4,
    protocol: 6,
    direction: 0,
    mode: 2,
    reason: 1,
    ...over,
  });

const ctx = {
  bootTimeMs: 1_700_000_000_000,
  rule: () => ({ name: "r" }),
  interfaceName: () => null,
};

test("times and connection ids are exact across the u64 range", () => {
  const samples = [
    0n,
    1n,
    999_999n,
    1_000_000n,
    (1n << 32n) - 1n,
    1n << 32n,
    (1n << 32n) * 1_000_000n - 1n,
    (1n << 32n) * 1_000_000n,
    (1n << 53n) + 999_999n,
    123_456_789_012_345_678n,
    (1n << 63n) - 1n,
  ];
  for (const ts of samples) {
    const ev = decodeEvent(record({ ts_ns: ts }), { ...ctx, bootTimeMs: 0 });
    const ms = Number(ts / 1_000_000n);
    // past Date's range the time is not a date at all, as before
    if (ms <= 8.64e15) assert.equal(ev.time, new Date(ms).toISOString(), `ts ${ts}`);
  }
  for (const id of [0n, 1n, 0xfn, 0xffff_ffffn, 0x1_0000_0000n, 0x1_0000_00abn, (1n << 64n) - 1n]) {
    const ev = decodeEvent(record({ conn_id: id }), ctx);
    assert.equal(ev.connection, id === 0n ? null : id.toString(16));
  }
  const ev = decodeEvent(record({ ts_ns: 2_500_000n }), ctx);
  assert.equal(ev.time, new Date(1_700_000_000_002).toISOString());
});

test("addresses, ports, the owner and a closed event's counts are read from the record", () => {
  const a = decodeEvent(
    record({
      family: 6,
      local: v6("2001:db8:0:0:0:0:0:1"),
      remote: v6("fe80:0:0:0:1:2:3:4"),
      local_port: 443,
      remote_port: 40000,
      direction: 1,
    }),
    ctx,
  );
  assert.deepEqual(
    [a.local, a.remote, a.direction],
    [{ ip: "2001:db8::1", port: 443 }, { ip: "fe80::1:2:3:4", port: 40000 }, "egress"],
  );
  assert.equal(a.process, null, "no owner recorded");

  const owner = ownerCodec.encode({
    pid: 812,
    uid: 1000,
    cgroup_id: 7n,
    comm: Buffer.from("curl\0"),
  });
  const b = decodeEvent(
    record({
      owner,
      type: EventType.closed,
      reason: 4,
      packets: 12n,
      bytes: 3400n,
      duration_ns: 1_234_567_000n,
    }),
    ctx,
  );
  assert.deepEqual(
    b.process && { pid: b.process.pid, name: b.process.name, user: b.process.user },
    { pid: 812, name: "curl", user: 1000 },
  );
  assert.equal(b.type, "closed");
  assert.deepEqual(b.stats, { packets: 12, bytes: 3400, durationMs: 1234.567 });
  assert.throws(() => decodeEvent(record().subarray(0, 100), ctx), RangeError);
});

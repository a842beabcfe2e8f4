// A QUIC flow whose ClientHello moat cannot read (two server names: which one the server takes
// cannot be told) gets the follow-up event a TLS connection's unreadable hello gets: its server
// name and certificate unseen, never a name the server may not use; once, like any flow.
import { test } from "node:test";
import assert from "node:assert/strict";
import { EventType } from "../../src/datapath/abi.ts";
import type { ImageRule } from "../../src/policy/index.ts";
import { quicPathWith, quicRecord } from "../helpers/quic-path-feed.ts";
import { cryptoFrame, datagram, sealInitial } from "../helpers/quic-initial.ts";

const RULES: ImageRule[] = [
  { name: "watch", action: "block", mode: "detect", log: false, maxDurationSeconds: 0 },
  { name: "quiet", action: "allow", mode: "prevent", log: false, maxDurationSeconds: 0 },
];

const u16 = (n: number) => Buffer.from([n >> 8, n & 0xff]);
const ext = (type: number, data: Buffer) => Buffer.concat([u16(type), u16(data.length), data]);
const serverName = (name: string) => {
  const entry = Buffer.concat([Buffer.from([0]), u16(name.length), Buffer.from(name)]);
  return ext(0, Buffer.concat([u16(entry.length), entry]));
};

/** A TLS 1.3 ClientHello message with two server_name extensions. */
function twoNamesHello(): Buffer {
  const exts = Buffer.concat([
    serverName("allowed.example"),
    serverName("other.example"),
    ext(0x2b, Buffer.from([2, 3, 4])),
  ]);
  const body = Buffer.concat([
    Buffer.from([3, 3]),
    Buffer.alloc(32, 7),
    Buffer.from([0]),
    u16(2),
    Buffer.from([0x13, 0x01]),
    Buffer.from([1, 0]),
    u16(exts.length),
    exts,
  ]);
  const length = Buffer.from([body.length >> 16, (body.length >> 8) & 0xff, body.length & 0xff]);
  return Buffer.concat([Buffer.from([1]), length, body]);
}

const DCID = Buffer.from("8394c8f03e515708", "hex");
const INITIAL = datagram(sealInitial(DCID, 0, cryptoFrame(0, twoNamesHello())));

test("an Initial whose ClientHello has two server names: one event, its name unseen", () => {
  const { events, deliver } = quicPathWith(RULES);
  deliver(quicRecord(1n, 0, EventType.detected, INITIAL));
  deliver(quicRecord(1n, 0, EventType.detected, INITIAL));
  // allowed without log: no follow-up, as any flow
  deliver(quicRecord(2n, 1, EventType.allowed, INITIAL));
  assert.equal(events.length, 1);
  const e = events[0]!;
  assert.deepEqual(e.layer7, { tls: { unseen: ["sni", "certificate"] }, quic: true });
  assert.deepEqual(
    [e.type, e.rule, e.reason, e.hook],
    ["detected", "watch", "quic_initial", "quic_initial"],
  );
});

// The daemon's QUIC path (docs/l7-quic.md): kernel copies of a flow's first datagrams become one
// follow-up event with the ClientHello's facts, only for decisions that are reported (detected,
// or a rule with log), once per flow however many Initials it sends.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { EventType, RULE_NONE } from "../../src/datapath/abi.ts";
import type { ImageRule } from "../../src/policy/index.ts";
import { quicPathWith, quicRecord } from "../helpers/quic-path-feed.ts";

const INITIAL = Buffer.from(
  readFileSync(
    new URL("../fixtures/quic/rfc9001-client-initial.hex", import.meta.url),
    "utf8",
  ).replace(/\s/g, ""),
  "hex",
);

const RULES: ImageRule[] = [
  { name: "watch", action: "block", mode: "detect", log: false, maxDurationSeconds: 0 },
  { name: "quiet", action: "allow", mode: "prevent", log: false, maxDurationSeconds: 0 },
  { name: "logged", action: "allow", mode: "prevent", log: true, maxDurationSeconds: 0 },
];

const record = (cookie: bigint, rule: number, verdict: number, data = INITIAL) =>
  quicRecord(cookie, rule, verdict, data);
const path = () => quicPathWith(RULES);

test("a detected flow's Initial becomes one event with the SNI, however many Initials it sends", () => {
  const { events, deliver } = path();
  deliver(record(1n, 0, EventType.detected));
  deliver(record(1n, 0, EventType.detected));
  assert.equal(events.length, 1);
  const e = events[0]!;
  assert.deepEqual(e.layer7, {
    tls: { sni: "example.com", version: "1.3", alpn: ["alpn"], ech: false },
    quic: true,
  });
  assert.equal(e.type, "detected");
  assert.equal(e.rule, "watch");
  assert.equal(e.mode, "detect");
  assert.equal(e.reason, "quic_initial");
  assert.equal(e.hook, "quic_initial");
  assert.deepEqual(e.remote, { ip: "192.0.2.10", port: 443 });
  assert.deepEqual(e.local, { ip: "10.0.0.2", port: 51234 });
  assert.equal(e.process?.name, "chromium");
  assert.equal(e.process?.pid, 812);
});

test("allowed flows are reported only under a rule with log; undecided ones and junk never", () => {
  const { events, deliver } = path();
  deliver(record(2n, 1, EventType.allowed));
  deliver(record(3n, RULE_NONE, EventType.allowed));
  deliver(record(4n, 0, EventType.detected, Buffer.from("not quic at all")));
  assert.equal(events.length, 0);
  deliver(record(5n, 2, EventType.allowed));
  assert.deepEqual(
    events.map((e) => [e.type, e.rule]),
    [["allowed", "logged"]],
  );
});

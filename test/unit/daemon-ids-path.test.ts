// The daemon's ids path on hand-made kernel copies: a flow direction's copies are put back in
// order and matched as one stream, a signature fires once per connection, a lost copy ends that
// direction's matching (counted), detect reports without cutting, prevent cuts drop signatures
// only, and a policy without signatures reports nothing.
import { mock, test } from "node:test";
import assert from "node:assert/strict";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { idsRecord, IdsConst, EventType, Hook } from "../../src/datapath/abi.ts";
import { mappedAddress } from "../../src/datapath/address.ts";
import type { IdsCopy, MoatEvent } from "../../src/datapath/index.ts";
import { parsePolicy, type PolicyModel } from "../../src/config/index.ts";
import { textOnlyHost } from "../../src/config/parse.ts";
import { startIdsPath } from "../../src/daemon/ids-path.ts";

function record(connId: bigint, toServer: boolean, offset: number, text: string): Buffer {
  const data = Buffer.from(text, "latin1");
  const whole = idsRecord.encode({
    ts_ns: 1_000_000n,
    conn_id: connId,
    local: mappedAddress("10.0.0.1"),
    remote: mappedAddress("192.0.2.7"),
    local_port: 80,
    remote_port: 40000,
    rule: 0,
    generation: 1,
    ifindex: 2,
    offset,
    len: data.length,
    family: 4,
    protocol: 6,
    direction: 0,
    to_server: toServer ? 1 : 0,
    hook: Hook.xdpIngress,
    verdict: EventType.allowed,
  });
  data.copy(whole, IdsConst.header);
  return whole.subarray(0, IdsConst.header + data.length);
}

const policyWith = (idsSection: string): PolicyModel =>
  parsePolicy(`version: 1\nmode: detect\n${idsSection}`, "p.yaml", textOnlyHost);

function lab(idsSection: string) {
  let model = policyWith(idsSection);
  const events: MoatEvent[] = [];
  const cuts: IdsCopy[] = [];
  let deliver: (r: Buffer) => void = () => {};
  let clock = 0;
  const path = startIdsPath({
    source: { subscribeIds: (on) => (deliver = on) },
    model: () => model,
    push: (e) => events.push(e),
    process: () => {
      throw new Error("no owner in these copies");
    },
    cut: (copy) => {
      cuts.push(copy);
      return true;
    },
    bootTimeMs: 0,
    now: () => clock,
  });
  const reload = (next: string) => {
    model = policyWith(next);
    path.applied();
  };
  const advance = (ms: number) => (clock += ms);
  return {
    send: (r: Buffer) => deliver(r),
    events,
    cuts,
    path,
    reload,
    advance,
    model: () => model,
  };
}

const RULES = `ids:
  mode: prevent
  rules:
    - 'drop tcp any any -> any 80 (msg:"admin"; flow:to_server; content:"GET /admin"; sid:1;)'
    - 'alert tcp any 80 -> any any (msg:"not found"; flow:to_client; content:"404"; sid:2;)'
`;

test("copies in order make one stream: a content split across two copies matches once", () => {
  const l = lab(RULES);
  l.send(record(7n, true, 0, "GET /ad"));
  assert.equal(l.events.length, 0);
  l.send(record(7n, true, 7, "min HTTP/1.1\r\n"));
  l.send(record(7n, true, 21, "GET /admin again"));
  assert.equal(l.events.length, 1, "once per connection");
  const e = l.events[0]!;
  assert.equal(e.type, "blocked");
  assert.equal(e.mode, "prevent");
  assert.equal(e.rule, "ids:1");
  assert.equal(e.reason, "ids");
  assert.equal(e.connection, "7");
  assert.deepEqual(e.remote, { ip: "192.0.2.7", port: 40000 });
  assert.deepEqual(e.ids, {
    sid: 1,
    msg: "admin",
    action: "drop",
    flow: "to_server",
    source: "p.yaml:6:8",
    cut: true,
  });
  assert.equal(l.cuts.length, 1);
  // an alert signature on the reply: reported, not cut
  l.send(record(7n, false, 0, "HTTP/1.1 404 Not Found"));
  assert.deepEqual(
    l.events.map((x) => [x.type, x.rule, x.ids?.flow]),
    [
      ["blocked", "ids:1", "to_server"],
      ["detected", "ids:2", "to_client"],
    ],
  );
  assert.equal(l.cuts.length, 1);
  assert.deepEqual(l.path.counters(), { copies: 4, gaps: 0, detected: 1, blocked: 1 });
});

test("a lost copy ends that direction's matching; detect never cuts", () => {
  const l = lab(RULES.replace("mode: prevent", "mode: detect"));
  l.send(record(9n, true, 0, "GET /ad"));
  l.send(record(9n, true, 20, "GET /admin")); // the copy at 7 was lost
  assert.equal(l.events.length, 0);
  assert.equal(l.path.counters().gaps, 1);
  l.send(record(10n, true, 0, "GET /admin"));
  assert.deepEqual(
    l.events.map((x) => [x.type, x.mode, x.ids?.cut]),
    [["detected", "detect", undefined]],
  );
  assert.equal(l.cuts.length, 0);
});

test("a policy whose signatures were all refused reports nothing", () => {
  const l = lab(
    `ids:\n  rules: ['alert tcp any any -> any 80 (content:"a"; pcre:"/a/"; sid:1;)']\n`,
  );
  l.send(record(11n, true, 0, "a"));
  assert.equal(l.events.length, 0);
});

test("a reload that turns the IDS off lets go of the flows held and the signatures they matched with", async () => {
  setFlagsFromString("--expose-gc");
  const gc = runInNewContext("gc") as () => void;
  const l = lab(RULES);
  const signatures = new WeakRef(l.model().ids!.signatures);
  l.send(record(7n, true, 0, "GET /ad"));
  l.reload("");
  for (let i = 0; i < 10 && signatures.deref(); i++) {
    await new Promise((resolve) => setImmediate(resolve));
    gc();
  }
  assert.equal(signatures.deref(), undefined, "the signatures of the policy before are garbage");
  // turned on again: the flow's stream starts again from its next copy at offset 0 only
  l.reload(RULES);
  l.send(record(7n, true, 7, "min HTTP/1.1\r\n"));
  assert.equal(l.events.length, 0, "no stream is put together with bytes from before");
  assert.equal(l.path.counters().gaps, 1);
});

const NO_HOST = `ids:
  mode: prevent
  bytes: 64
  rules:
    - 'drop tcp any any -> any 80 (msg:"no Host"; flow:to_server; content:"GET "; depth:4; content:!"Host:"; depth:200; sid:7;)'
`;

test("a negated content waits for the bytes its range covers: a request split before its Host header is not cut", () => {
  const l = lab(NO_HOST);
  l.send(record(1n, true, 0, "GET /index.html HTTP/1.1\r\n"));
  l.send(record(1n, true, 26, "Host: example.com\r\n\r\n"));
  assert.equal(l.events.length, 0);
  assert.equal(l.cuts.length, 0);
  // the window (64 bytes) is full without a Host: judged at once
  const head = "GET /index.html HTTP/1.1\r\n";
  l.send(record(2n, true, 0, head));
  assert.equal(l.events.length, 0);
  l.send(record(2n, true, head.length, "X-Pad: ".padEnd(64 - head.length, "x")));
  assert.deepEqual(
    l.events.map((e) => [e.type, e.rule, e.connection]),
    [["blocked", "ids:7", "2"]],
  );
  // eight copies are all the kernel copies of a direction: judged at the eighth
  let at = 0;
  for (const part of ["GET ", "/", "a", "b", "c", " ", "HTTP/1.0", "\r\n"]) {
    l.send(record(3n, true, at, part));
    at += part.length;
  }
  assert.deepEqual(
    l.events.map((e) => e.connection),
    ["2", "3"],
  );
  assert.equal(l.cuts.length, 2);
});

test("a flow that stops before its window fills is judged on what arrived when it is forgotten", () => {
  const l = lab(NO_HOST);
  l.send(record(4n, true, 0, "GET / HTTP/1.0\r\n"));
  l.send(record(5n, true, 0, "GET / HTTP/1.1\r\nHost: a\r\n"));
  l.advance(10_000);
  l.send(record(6n, true, 0, "GET "));
  assert.equal(l.events.length, 0, "still within the time a flow is held");
  l.advance(25_000);
  l.send(record(7n, true, 0, "POST / HTTP/1.1\r\n"));
  assert.deepEqual(
    l.events.map((e) => [e.type, e.rule, e.connection, e.ids?.cut]),
    [["blocked", "ids:7", "4", true]],
    "flow 4 is forgotten, and judged; flow 5 had its Host; flow 6 is still held",
  );
  l.advance(30_000);
  l.send(record(8n, true, 0, "x"));
  assert.deepEqual(
    l.events.map((e) => e.connection),
    ["4", "6"],
  );
});

test("a flow let go is judged even when no other copy comes", () => {
  mock.timers.enable({ apis: ["setInterval"] });
  try {
    const l = lab(NO_HOST);
    l.send(record(9n, true, 0, "GET / HTTP/1.0\r\n"));
    l.advance(30_000);
    mock.timers.tick(30_000);
    assert.deepEqual(
      l.events.map((e) => [e.type, e.connection]),
      [["blocked", "9"]],
    );
  } finally {
    mock.timers.reset();
  }
});

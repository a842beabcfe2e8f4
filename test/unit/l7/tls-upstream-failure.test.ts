// A TLS connection whose server cannot be reached (nothing listens on its port) through moat's
// real relay: the client is reset and the decision is an event that says why, as for HTTP (the
// request's decision, status 502) and SSH (`ended`): decided at the ClientHello, that decision;
// waiting for the server's certificate, blocked; a ClientHello moat cannot read, its judgement.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { connect } from "node:net";
import { parsePolicy } from "../../../src/config/index.ts";
import type { L7Relay } from "../../../src/l7/index.ts";
import type { MoatEvent } from "../../../src/datapath/index.ts";
import { openRealRelay } from "../../helpers/l7-real-relay.ts";
import { freePort } from "../../helpers/ports.ts";
import { clientHello } from "../../helpers/quic-initial.ts";

const POLICY = (port: number) => `version: 1
mode: prevent
attach: { cgroup: / }
defaults: { ingress: block, egress: block }
rules:
  - name: by-name
    direction: egress
    action: allow
    log: true
    layer4: { protocol: tcp, port: [${port}] }
    layer7: { tls: { sni: [ok.example] } }
  - name: by-issuer
    direction: egress
    action: allow
    log: true
    layer4: { protocol: tcp, port: [${port}] }
    layer7: { tls: { sni: [cert.example], certificate: { issuer: "*moat*" } } }
  - name: any-tls
    direction: egress
    action: allow
    log: true
    layer4: { protocol: tcp, port: [${port}] }
    layer7: { tls: {} }
`;

let relay: L7Relay;
let events: MoatEvent[];
let logs: string[];
before(async () => {
  const port = await freePort(); // closed again: the server refuses every connection
  ({ relay, events, logs } = await openRealRelay({
    port,
    policy: parsePolicy(POLICY(port), "p.yaml"),
    names: () => ["ok.example", "cert.example"],
  }));
});
after(() => relay.close());

/** A ClientHello message in one TLS record. */
const record = (message: Buffer) =>
  Buffer.concat([Buffer.from([22, 3, 1, message.length >> 8, message.length & 0xff]), message]);

/** Sends `bytes` through the relay: how the client's connection ended and the events. */
async function through(bytes: Buffer): Promise<{ ended: string; events: MoatEvent[] }> {
  const from = events.length;
  const a = relay.addressFor(4)!;
  const s = connect(a.port, a.ip);
  const ended = new Promise<string>((resolve) => {
    s.on("error", (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
    s.on("close", () => resolve("closed"));
  });
  s.setTimeout(3000, () => s.destroy());
  s.write(bytes);
  const how = await ended;
  // the event follows the reset in the same turn; a tick for the relay to finish
  await new Promise((r) => setImmediate(r));
  return { ended: how, events: events.slice(from) };
}

const endedWhy = (e: MoatEvent | undefined) => String(e?.layer7?.tls?.ended ?? "");

test("decided at the ClientHello, no server: the decision is reported with why", async () => {
  const r = await through(record(clientHello("ok.example", ["h2"])));
  assert.equal(r.ended, "ECONNRESET");
  assert.equal(r.events.length, 1, `events: ${JSON.stringify(r.events)} logs: ${logs.join("|")}`);
  const e = r.events[0];
  assert.deepEqual([e?.type, e?.rule, e?.layer7?.tls?.sni], ["allowed", "by-name", "ok.example"]);
  assert.match(endedWhy(e), /^no connection to the server: .*ECONNREFUSED/);
  assert.deepEqual(e?.relay, { splice: "none" });
});

test("waiting for the server's certificate, no server: reported blocked with why", async () => {
  const r = await through(record(clientHello("cert.example", ["h2"])));
  assert.equal(r.ended, "ECONNRESET");
  assert.equal(r.events.length, 1, `events: ${JSON.stringify(r.events)} logs: ${logs.join("|")}`);
  const e = r.events[0];
  assert.deepEqual([e?.type, e?.mode, e?.layer7?.tls?.sni], ["blocked", "prevent", "cert.example"]);
  assert.match(endedWhy(e), /^no connection to the server: .*ECONNREFUSED/);
});

test("a ClientHello moat cannot read, let through, no server: logged and reported with why", async () => {
  const serverHelloFirst = record(Buffer.from([2, 0, 0, 0]));
  const before = logs.length;
  const r = await through(serverHelloFirst);
  assert.equal(r.ended, "ECONNRESET");
  assert.equal(r.events.length, 1, `events: ${JSON.stringify(r.events)} logs: ${logs.join("|")}`);
  const e = r.events[0];
  assert.deepEqual([e?.type, e?.rule], ["allowed", "any-tls"]);
  assert.deepEqual(e?.layer7?.tls?.unseen, ["sni", "certificate"]);
  assert.match(endedWhy(e), /^no connection to the server: .*ECONNREFUSED/);
  assert.ok(
    logs.slice(before).some((l) => /no connection to the server/.test(l)),
    logs.slice(before).join("\n"),
  );
});

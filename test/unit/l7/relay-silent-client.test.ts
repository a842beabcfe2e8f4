// A client that says nothing within the header timeout: the relay connects to the server (a
// protocol whose server speaks first, e.g. SMTP, needs it) and waits for whichever side speaks
// first. The server first: its greeting reaches the client and the two are spliced, as before.
// The client first: its bytes are told and judged as if they had come in time, so a TLS client
// cannot pass the TLS rules by waiting out the timeout before its ClientHello. moat's real relay,
// servers on loopback.
import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { connect, createServer, type AddressInfo, type Socket } from "node:net";
import { parsePolicy } from "../../../src/config/index.ts";
import { egressBlockPolicy } from "../../helpers/egress-block-policy.ts";
import { openRealRelay } from "../../helpers/l7-real-relay.ts";
import { captureHello, nodeClient } from "../../helpers/tls-capture.ts";

const POLICY = egressBlockPolicy([
  { name: "no-blocked", match: ["layer7: { tls: { sni: [blocked.example] } }"] },
  { name: "no-blocked-http", match: ["layer7: { http: { host: [blocked.example] } }"] },
]);

/** A server that greets each connection with `greeting` (none: silent) and counts what it got. */
async function server(t: TestContext, greeting?: string) {
  let received = "";
  const s = createServer((c: Socket) => {
    c.on("error", () => {});
    if (greeting) c.write(greeting);
    c.on("data", (d: Buffer) => {
      received += d.toString("latin1");
      c.write(`got ${d.length}\r\n`);
    });
  });
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  t.after(() => s.close());
  return { port: (s.address() as AddressInfo).port, received: () => received };
}

async function relayTo(t: TestContext, port: number) {
  const opened = await openRealRelay({
    port,
    policy: parsePolicy(POLICY, "silent.yaml"),
    names: () => ["blocked.example"],
    headerTimeoutMs: 100,
  });
  t.after(() => opened.relay.close());
  return opened;
}

/** Connects, stays silent past the header timeout, then sends `bytes` once `after` was received. */
function silentClient(port: number, bytes: Buffer, after = "") {
  const s = connect(port, "127.0.0.1");
  let got = "";
  let sent = false;
  const send = () => {
    if (sent || !got.includes(after)) return;
    sent = true;
    s.write(bytes);
  };
  s.on("data", (d: Buffer) => {
    got += d.toString("latin1");
    if (sent) s.end();
    else setTimeout(send, 300);
  });
  setTimeout(send, 300);
  const ended = new Promise<string>((resolve) => {
    s.on("error", (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
    s.on("close", () => resolve("closed"));
  });
  s.setTimeout(3000, () => s.destroy());
  return { ended, got: () => got };
}

test("a TLS client silent past the header timeout is still judged by its ClientHello: blocked", async (t) => {
  const { bytes } = await captureHello(nodeClient({ servername: "blocked.example" }));
  const upstream = await server(t);
  const { relay, events } = await relayTo(t, upstream.port);
  const c = silentClient(relay.addressFor(4)!.port, bytes);
  assert.equal(await c.ended, "ECONNRESET");
  assert.equal(upstream.received(), "", "no byte of the hello reached the server");
  assert.deepEqual(
    events.map((e) => [e.type, e.rule, e.layer7?.tls?.sni]),
    [["blocked", "no-blocked", "blocked.example"]],
  );
});

test("a server that speaks first: its greeting reaches the silent client, then both are spliced", async (t) => {
  const upstream = await server(t, "220 ready\r\n");
  const { relay } = await relayTo(t, upstream.port);
  const c = silentClient(relay.addressFor(4)!.port, Buffer.from("EHLO me\r\n"), "220 ready");
  assert.equal(await c.ended, "closed");
  assert.equal(c.got(), "220 ready\r\ngot 9\r\n");
  assert.equal(upstream.received(), "EHLO me\r\n");
});

test("an HTTP client silent past the header timeout is still judged by its request: 403", async (t) => {
  const upstream = await server(t);
  const { relay, events } = await relayTo(t, upstream.port);
  const request = Buffer.from("GET / HTTP/1.1\r\nHost: blocked.example\r\n\r\n");
  const c = silentClient(relay.addressFor(4)!.port, request);
  await c.ended;
  assert.match(c.got(), /^HTTP\/1\.1 403 /);
  assert.equal(upstream.received(), "", "the request did not reach the server");
  assert.deepEqual(
    events.map((e) => [e.type, e.rule]),
    [["blocked", "no-blocked-http"]],
  );
});

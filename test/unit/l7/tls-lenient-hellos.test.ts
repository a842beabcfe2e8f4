// ClientHellos that lenient TLS servers read but a strict reading would not take for one: moat
// must judge them as TLS it cannot read (their server name unseen), never as another protocol
// or by a server name the server may not use. Go's crypto/tls (Caddy, Traefik, ...) drops a
// warning alert before the ClientHello and reads records of any version below 0x1000 until it
// has chosen one; SNI routers such as HAProxy take the first server_name extension of several.
// Each goes through moat's real relay to a server that only counts what reaches it.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { connect, createServer, type AddressInfo, type Server, type Socket } from "node:net";
import { once } from "node:events";
import { parsePolicy } from "../../../src/config/index.ts";
import type { L7Relay } from "../../../src/l7/index.ts";
import type { MoatEvent } from "../../../src/datapath/index.ts";
import { egressBlockPolicy } from "../../helpers/egress-block-policy.ts";
import { openRealRelay } from "../../helpers/l7-real-relay.ts";
import { captureHello, nodeClient } from "../../helpers/tls-capture.ts";

const POLICY = (port: number) =>
  egressBlockPolicy([
    {
      name: "no-blocked",
      match: [
        `layer4: { protocol: tcp, port: [${port}] }`,
        "layer7: { tls: { sni: [blocked.example] } }",
      ],
    },
  ]);

let server: Server;
let port: number;
let relay: L7Relay;
let events: MoatEvent[];
let received = 0;
let blockedHello: Buffer;
before(async () => {
  server = createServer((s: Socket) => {
    s.on("error", () => {});
    s.on("data", (d: Buffer) => {
      received += d.length;
      s.end(); // what reached it is counted: the client sees its connection end
    });
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  port = (server.address() as AddressInfo).port;
  // both names resolved to the address by this client: one front serving both
  ({ relay, events } = await openRealRelay({
    port,
    policy: parsePolicy(POLICY(port), "p.yaml"),
    names: () => ["blocked.example", "allowed.example"],
  }));
  ({ bytes: blockedHello } = await captureHello(nodeClient({ servername: "blocked.example" })));
});
after(() => {
  relay.close();
  server.close();
});

/** Sends `bytes` through the relay: how the client's connection ended and the event. */
async function through(
  bytes: Buffer,
  via: { relay: L7Relay; events: MoatEvent[] } = { relay, events },
  first?: { bytes: number; waitMs: number },
): Promise<{ ended: string; event: MoatEvent | undefined }> {
  received = 0;
  const before = via.events.length;
  const a = via.relay.addressFor(4)!;
  const s = connect(a.port, a.ip);
  const ended = new Promise<string>((resolve) => {
    s.on("error", (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
    s.on("close", () => resolve("closed"));
  });
  s.setTimeout(3000, () => s.destroy());
  if (first) {
    s.write(bytes.subarray(0, first.bytes));
    await new Promise((r) => setTimeout(r, first.waitMs));
  }
  s.write(first ? bytes.subarray(first.bytes) : bytes);
  const how = await ended;
  return { ended: how, event: via.events.slice(before).at(-1) };
}

const expectBlocked = (r: { ended: string; event: MoatEvent | undefined }) => {
  assert.equal(r.ended, "ECONNRESET");
  assert.equal(received, 0, "no byte reaches the server");
  assert.deepEqual([r.event?.type, r.event?.rule], ["blocked", "no-blocked"]);
};

const u16 = (n: number) => Buffer.from([n >> 8, n & 0xff]);
const u24 = (n: number) => Buffer.from([n >> 16, (n >> 8) & 0xff, n & 0xff]);
const ext = (type: number, data: Buffer) => Buffer.concat([u16(type), u16(data.length), data]);
const hostName = (name: string) =>
  Buffer.concat([Buffer.from([0]), u16(name.length), Buffer.from(name)]);
const serverName = (...entries: Buffer[]) => {
  const list = Buffer.concat(entries);
  return ext(0, Buffer.concat([u16(list.length), list]));
};

/** A minimal ClientHello (TLS 1.2) with these extensions, in one record. */
function handmade(extensions: Buffer): Buffer {
  const body = Buffer.concat([
    Buffer.from([3, 3]),
    Buffer.alloc(32),
    Buffer.from([0]),
    Buffer.from([0, 2, 0xc0, 0x2f]),
    Buffer.from([1, 0]),
    u16(extensions.length),
    extensions,
  ]);
  const message = Buffer.concat([Buffer.from([1]), u24(body.length), body]);
  return Buffer.concat([Buffer.from([22, 3, 1]), u16(message.length), message]);
}

test("the real ClientHello for the blocked name is blocked (the baseline)", async () => {
  expectBlocked(await through(blockedHello));
});

test("a warning alert before the ClientHello (Go's servers drop it) is TLS to moat: blocked", async () => {
  const userCanceled = Buffer.from([21, 3, 1, 0, 2, 1, 90]);
  expectBlocked(await through(Buffer.concat([userCanceled, blockedHello])));
});

test("a ClientHello in records of version 0x0001 (Go reads any below 0x1000 first) is TLS to moat: blocked", async () => {
  const odd = Buffer.from(blockedHello);
  for (let at = 0; at + 5 <= odd.length; at += 5 + odd.readUInt16BE(at + 3))
    odd.writeUInt16BE(1, at + 1);
  expectBlocked(await through(odd));
});

test("two server_name extensions, or two host names in one: moat cannot tell which the server reads", async () => {
  const twoExtensions = Buffer.concat([
    serverName(hostName("blocked.example")),
    serverName(hostName("allowed.example")),
  ]);
  const r = await through(handmade(twoExtensions));
  expectBlocked(r);
  assert.deepEqual(r.event?.layer7?.tls?.unseen, ["sni", "certificate"]);
  const twoNames = serverName(hostName("allowed.example"), hostName("blocked.example"));
  expectBlocked(await through(handmade(twoNames)));
});

test("one server name, in any case or with its trailing dot: blocked; another name passes", async () => {
  expectBlocked(await through(handmade(serverName(hostName("BLOCKED.Example.")))));
  const r = await through(handmade(serverName(hostName("allowed.example"))));
  assert.equal(r.ended, "closed");
  assert.ok(received > 0, "the allowed hello reached the server");
});

test("a ClientHello's first byte alone, then silence past the header timeout: the rest is judged as TLS", async (t) => {
  const quick = await openRealRelay({
    port,
    policy: parsePolicy(POLICY(port), "p.yaml"),
    names: () => ["blocked.example"],
    headerTimeoutMs: 100,
  });
  t.after(() => quick.relay.close());
  expectBlocked(await through(blockedHello, quick, { bytes: 1, waitMs: 300 }));
  const sslv2 = Buffer.from([0x80, 0x2e, 0x01, 0x03, 0x01]);
  expectBlocked(await through(sslv2, quick, { bytes: 2, waitMs: 300 }));
});

const OLD_TLS = (port: number) => `version: 1
mode: prevent
attach: { cgroup: / }
defaults: { ingress: block, egress: allow }
rules:
  - name: no-old-tls
    direction: egress
    action: block
    layer4: { protocol: tcp, port: [${port}] }
    layer7: { tls: { version: ["<1.2"] } }
`;

test("a hello offering only 1.3 that an old server answers in TLS 1.0 (it reads legacy_version): blocked", async (t) => {
  // a server that knows no supported_versions: answers every hello with a TLS 1.0 ServerHello
  const body = Buffer.concat([
    Buffer.from([3, 1]),
    Buffer.alloc(32, 1),
    Buffer.from([0, 0, 0x2f, 0]),
  ]);
  const message = Buffer.concat([Buffer.from([2]), u24(body.length), body]);
  const serverHello = Buffer.concat([Buffer.from([22, 3, 1]), u16(message.length), message]);
  let answered = 0;
  const old = createServer((s: Socket) => {
    s.on("error", () => {});
    s.once("data", () => {
      answered++;
      s.write(serverHello);
    });
  });
  old.listen(0, "127.0.0.1");
  await once(old, "listening");
  t.after(() => old.close());
  const oldPort = (old.address() as AddressInfo).port;
  const opened = await openRealRelay({
    port: oldPort,
    policy: parsePolicy(OLD_TLS(oldPort), "p.yaml"),
  });
  t.after(() => opened.relay.close());
  // supported_versions: 1.3 only; legacy_version 1.0
  const hello = handmade(ext(43, Buffer.from([2, 3, 4])));
  hello.writeUInt16BE(0x0301, 9);
  const r = await through(hello, opened);
  assert.equal(answered, 1, "the hello reached the old server");
  assert.equal(r.ended, "ECONNRESET");
  assert.deepEqual(
    [r.event?.type, r.event?.rule, r.event?.layer7?.tls?.version],
    ["blocked", "no-old-tls", "1.0"],
  );
});

// A ClientHello in SSLv2's record format (a 2-byte header with the top bit set, then message
// type 1), which servers that accept SSLv2-compatible hellos read, is TLS to the relay: a
// ClientHello moat cannot read, judged with its server name and certificate unseen, so a
// `tls: {}` block rule blocks it before the server sees a byte.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { connect, createServer, type AddressInfo, type Server, type Socket } from "node:net";
import { once } from "node:events";
import { randomBytes } from "node:crypto";
import { parsePolicy } from "../../../src/config/index.ts";
import { sniff, type L7Relay } from "../../../src/l7/index.ts";
import type { MoatEvent } from "../../../src/datapath/index.ts";
import { egressBlockPolicy } from "../../helpers/egress-block-policy.ts";
import { openRealRelay } from "../../helpers/l7-real-relay.ts";

/** SSLv2 CLIENT-HELLO offering TLS 1.2: type 1, version, lengths, 3-byte cipher specs, challenge. */
function sslv2Hello(): Buffer {
  const specs = [0x00c02b, 0x00c02f, 0x00c02c, 0x00c030, 0x00009c, 0x00002f, 0x0000ff];
  const challenge = randomBytes(32);
  const body = Buffer.alloc(9 + specs.length * 3);
  body.writeUInt8(1, 0);
  body.writeUInt16BE(0x0303, 1);
  body.writeUInt16BE(specs.length * 3, 3);
  body.writeUInt16BE(0, 5);
  body.writeUInt16BE(challenge.length, 7);
  specs.forEach((s, i) => body.writeUIntBE(s, 9 + i * 3, 3));
  const all = Buffer.concat([body, challenge]);
  const header = Buffer.from([0x80 | (all.length >> 8), all.length & 0xff]);
  return Buffer.concat([header, all]);
}

test("an SSLv2-format ClientHello is sniffed as TLS; its first two bytes alone ask for more", () => {
  const hello = sslv2Hello();
  assert.equal(sniff(hello), "tls");
  assert.equal(sniff(hello.subarray(0, 2)), "more");
  // the top bit with another message type is not a hello
  const other = Buffer.from(hello);
  other[2] = 4;
  assert.equal(sniff(other), "unknown");
});

const POLICY = (port: number) =>
  egressBlockPolicy([
    {
      name: "no-tls",
      match: [`layer4: { protocol: tcp, port: [${port}] }`, "layer7: { tls: {} }"],
    },
  ]);

let server: Server;
let relay: L7Relay;
let events: MoatEvent[];
let received = 0;
before(async () => {
  // a legacy server: answers whatever it reads
  server = createServer((s: Socket) => {
    s.on("error", () => {});
    s.on("data", (d: Buffer) => {
      received += d.length;
      s.write(Buffer.from([0x16, 0x03, 0x03, 0x00, 0x00]));
    });
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const port = (server.address() as AddressInfo).port;
  ({ relay, events } = await openRealRelay({ port, policy: parsePolicy(POLICY(port), "p.yaml") }));
});
after(() => {
  relay.close();
  server.close();
});

test("an SSLv2-format ClientHello is blocked by a tls: {} block rule; the server sees nothing", async () => {
  const a = relay.addressFor(4)!;
  const s = connect(a.port, a.ip);
  let answer = 0;
  s.on("data", (d: Buffer) => (answer += d.length));
  const ended = new Promise<string>((resolve) => {
    s.on("error", (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
    s.on("close", () => resolve("closed"));
  });
  s.setTimeout(5000, () => s.destroy());
  s.write(sslv2Hello());
  assert.equal(await ended, "ECONNRESET");
  assert.equal(answer, 0);
  assert.equal(received, 0);
  const e = events.at(-1);
  assert.deepEqual(
    [e?.type, e?.rule, e?.layer7?.tls?.unseen],
    ["blocked", "no-tls", ["sni", "certificate"]],
  );
});

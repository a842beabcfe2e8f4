// Reading the ClientHello of QUIC Initials (docs/l7-quic.md): the RFC 9001 (v1) and RFC 9369
// (v2) client Initial test vectors, a ClientHello split across packets and datagrams, bad
// input, and the first datagrams of a real client (ngtcp2's gtlsclient) sent to a local UDP
// socket that never answers.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { spawn } from "node:child_process";
import { createSocket } from "node:dgram";
import { once } from "node:events";
import {
  clientInitialKeys,
  QUIC_V1,
  QUIC_V2,
  QuicInitialReader,
  readInitials,
  readQuicClientHello,
} from "../../../src/l7/quic/index.ts";
import { clientHello, cryptoFrame, datagram, sealInitial } from "../../helpers/quic-initial.ts";

const fixture = (name: string): Buffer =>
  Buffer.from(
    readFileSync(new URL(`../../fixtures/quic/${name}`, import.meta.url), "utf8").replace(
      /\s/g,
      "",
    ),
    "hex",
  );
const DCID = Buffer.from("8394c8f03e515708", "hex");
const hex = (b: Buffer | undefined) => b?.toString("hex");

test("client Initial keys: RFC 9001 A.1 (v1) and RFC 9369 A.1 (v2)", () => {
  const v1 = clientInitialKeys(QUIC_V1, DCID)!;
  assert.equal(hex(v1.key), "1f369613dd76d5467730efcbe3b1a22d");
  assert.equal(hex(v1.iv), "fa044b2f42a3fd3b46fb255c");
  assert.equal(hex(v1.hp), "9f50449e04a0e810283a1e9933adedd2");
  const v2 = clientInitialKeys(QUIC_V2, DCID)!;
  assert.equal(hex(v2.key), "8b1a0bc121284290a29e0971b5cd045d");
  assert.equal(hex(v2.iv), "91f73e2351d8fa91660e909f");
  assert.equal(hex(v2.hp), "45b95e15235d6f45a6b19cbcb0294ba9");
  assert.equal(clientInitialKeys(0xff00001d, DCID), undefined, "a draft version is not read");
});

test("the RFC 9001 and RFC 9369 client Initials decrypt to a ClientHello for example.com", () => {
  for (const [file, version] of [
    ["rfc9001-client-initial.hex", "v1"],
    ["rfc9369-client-initial.hex", "v2"],
  ] as const) {
    const datagram = fixture(file);
    assert.equal(datagram.length, 1200);
    const [packet, ...more] = readInitials(datagram);
    assert.equal(more.length, 0);
    assert.equal(packet?.version, version);
    assert.equal(packet?.packetNumber, 2);
    assert.equal(hex(packet?.payload.subarray(0, 8)), "060040f1010000ed");
    assert.equal(packet?.payload.length, 1162);
    const hello = readQuicClientHello([datagram]);
    assert.deepEqual(hello, {
      sni: "example.com",
      alpn: ["alpn"],
      versions: ["1.3"],
      ech: false,
      quicVersion: version,
    });
  }
});

test("a ClientHello split across packets and datagrams is reassembled, in any order", () => {
  const dcid = Buffer.from("0011223344556677", "hex");
  const message = clientHello("www.example.org", ["h3"], 1600);
  const a = message.subarray(0, 700);
  const b = message.subarray(700, 1400);
  const c = message.subarray(1400);
  // datagram 1: two coalesced packets (the second one carries the end); datagram 2: the middle
  const first = datagram(
    sealInitial(dcid, 0, cryptoFrame(0, a)),
    sealInitial(dcid, 1, cryptoFrame(1400, c), 20),
  );
  const second = datagram(sealInitial(dcid, 2, cryptoFrame(700, b), 100));
  const reader = new QuicInitialReader();
  assert.equal(reader.feed(first), undefined, "a gap: not yet");
  const hello = reader.feed(second);
  assert.equal(hello?.sni, "www.example.org");
  assert.deepEqual(hello?.alpn, ["h3"]);
  assert.equal(reader.feed(second), undefined, "reported once");
});

test("CRYPTO bytes sent twice at one offset: the first copy stands, as a server keeps it", () => {
  const dcid = Buffer.from("0011223344556677", "hex");
  const evil = clientHello("evil.example", ["h3"], 1200);
  const good = clientHello("good.example", ["h3"], 1200);
  const reader = new QuicInitialReader();
  const hello = reader.feed(
    datagram(sealInitial(dcid, 0, Buffer.concat([cryptoFrame(0, evil), cryptoFrame(0, good)]))),
  );
  assert.equal(hello?.sni, "evil.example");
});

test("bad input ends in no answer, never a throw: truncated, tampered, garbage, short headers", () => {
  const good = fixture("rfc9001-client-initial.hex");
  const tampered = Buffer.from(good);
  tampered[600] = tampered[600]! ^ 1;
  const inputs = [
    Buffer.alloc(0),
    good.subarray(0, 30),
    good.subarray(0, 1000),
    tampered,
    Buffer.from([0x40, 1, 2, 3]),
    Buffer.alloc(1200, 0xff),
    Buffer.concat([good.subarray(0, 6), Buffer.from([0xff])]),
  ];
  for (const input of inputs) assert.equal(readQuicClientHello([input]), undefined);
  // a CRYPTO frame far past what is held is dropped, and the flow gives up
  const dcid = Buffer.from("0102030405060708", "hex");
  const huge = Buffer.from([1, 0xff, 0xff, 0xff]);
  const reader = new QuicInitialReader();
  assert.equal(reader.feed(datagram(sealInitial(dcid, 0, cryptoFrame(0, huge), 50))), undefined);
  assert.equal(reader.hopeless, true);
});

/** The first `count` datagrams a real client sends to a local UDP socket that never answers. */
async function capture(args: string[], count: number): Promise<Buffer[]> {
  const sock = createSocket({ type: "udp6" });
  sock.bind(0, "::");
  await once(sock, "listening");
  const got: Buffer[] = [];
  const enough = new Promise<void>((resolve) =>
    sock.on("message", (m) => {
      got.push(m);
      if (got.length >= count) resolve();
    }),
  );
  const child = spawn(
    "gtlsclient",
    [...args, "-q", "--timeout=5s", "localhost", String(sock.address().port)],
    {
      stdio: "ignore",
    },
  );
  const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
  try {
    await Promise.race([enough, once(child, "exit")]);
  } finally {
    clearTimeout(timer);
    if (child.exitCode === null) child.kill("SIGKILL");
    sock.close();
  }
  return got;
}

// Debian 12's ngtcp2 (0.12) knows QUIC v2 only as a draft: v2 is covered by RFC 9369's vector.
test("ngtcp2's client (gtlsclient): its first Initial names the server", async () => {
  const v1 = await capture([], 1);
  assert.ok(v1.length >= 1, "gtlsclient sent a datagram");
  const hello = readQuicClientHello(v1);
  assert.equal(hello?.sni, "localhost");
  assert.equal(hello?.quicVersion, "v1");
  assert.deepEqual(hello?.alpn, ["h3"]);
  assert.deepEqual(hello?.versions, ["1.3"]);
});

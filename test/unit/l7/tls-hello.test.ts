// The TLS ClientHello as real clients send it (openssl, curl, node, a post-quantum key share over
// several segments and several records) and as broken or hostile ones do: every input ends in a
// ClientHello or a stated reason, with at most 64 KiB held.

import { test } from "node:test";
import assert from "node:assert/strict";
import { HandshakeReader, HANDSHAKE_LIMIT } from "../../../src/l7/tls/handshake-reader.ts";
import { parseClientHello, type ClientHello } from "../../../src/l7/tls/hello.ts";
import { captureHello, command, nodeClient } from "../../helpers/tls-capture.ts";

/** Feeds the bytes in pieces of `step` and parses the first handshake message. */
function helloOf(bytes: Buffer, step = bytes.length): ClientHello {
  const reader = new HandshakeReader();
  for (let at = 0; at < bytes.length; at += step) reader.push(bytes.subarray(at, at + step));
  const read = reader.next();
  assert.equal(read.kind, "message", JSON.stringify(read));
  assert.ok(read.kind === "message" && read.type === 1);
  return parseClientHello(read.body);
}

/** The number of TLS records the ClientHello took. */
function records(bytes: Buffer): number {
  let n = 0;
  for (let at = 0; at + 5 <= bytes.length; at += 5 + bytes.readUInt16BE(at + 3)) n++;
  return n;
}

test("openssl s_client: SNI, TLS 1.2 and 1.3 offered, ALPN, no ECH", async () => {
  const { bytes } = await captureHello(
    command("openssl", (p) => [
      "s_client",
      "-connect",
      `127.0.0.1:${p}`,
      "-servername",
      "openssl.test",
      "-alpn",
      "h2,http/1.1",
    ]),
  );
  assert.deepEqual(helloOf(bytes), {
    sni: "openssl.test",
    versions: ["1.0", "1.1", "1.2", "1.3"],
    alpn: ["h2", "http/1.1"],
    ech: false,
  });
});

test("openssl s_client -tls1_2: no supported_versions, so the versions up to 1.2", async () => {
  const { bytes } = await captureHello(
    command("openssl", (p) => [
      "s_client",
      "-tls1_2",
      "-connect",
      `127.0.0.1:${p}`,
      "-servername",
      "old.test",
    ]),
  );
  const hello = helloOf(bytes);
  assert.equal(hello.sni, "old.test");
  assert.deepEqual(hello.versions, ["1.0", "1.1", "1.2"]);
});

test("curl: SNI from the URL and its ALPN", async () => {
  const { bytes } = await captureHello(
    command("curl", (p) => [
      "-sk",
      "--http2",
      "--resolve",
      `curl.example:${p}:127.0.0.1`,
      `https://curl.example:${p}/`,
    ]),
  );
  const hello = helloOf(bytes);
  assert.equal(hello.sni, "curl.example");
  assert.deepEqual(hello.alpn, ["h2", "http/1.1"]);
  assert.ok(hello.versions.includes("1.3"));
});

test("a post-quantum key share (X25519MLKEM768) makes a ClientHello over 1,200 bytes; byte-by-byte it still parses", async () => {
  const { bytes } = await captureHello(
    nodeClient({
      servername: "pq.example.org",
      ecdhCurve: "X25519MLKEM768:X25519",
      ALPNProtocols: ["http/1.1"],
    }),
  );
  assert.ok(bytes.length > 1200, `${bytes.length} bytes`);
  const hello = helloOf(bytes, 1);
  assert.deepEqual(hello, {
    sni: "pq.example.org",
    versions: ["1.2", "1.3"],
    alpn: ["http/1.1"],
    ech: false,
  });
  // the same message as a client that fragments its handshake sends it: 512-byte records
  const message = bytes.subarray(5);
  const fragments: Buffer[] = [];
  for (let at = 0; at < message.length; at += 512) {
    const part = message.subarray(at, at + 512);
    fragments.push(Buffer.from([22, 3, 1]), u16(part.length), part);
  }
  const split = Buffer.concat(fragments);
  assert.ok(records(split) >= 3, `${records(split)} records`);
  assert.deepEqual(helloOf(split, 100), hello);
});

/** A minimal ClientHello with these extensions, in one record. */
function handmade(extensions: Buffer, legacy = 0x0303): Buffer {
  const body = Buffer.concat([
    Buffer.from([legacy >> 8, legacy & 0xff]),
    Buffer.alloc(32),
    Buffer.from([0]),
    Buffer.from([0, 2, 0x13, 0x01]),
    Buffer.from([1, 0]),
    u16(extensions.length),
    extensions,
  ]);
  const message = Buffer.concat([Buffer.from([1]), u24(body.length), body]);
  return Buffer.concat([Buffer.from([22, 3, 1]), u16(message.length), message]);
}
const u16 = (n: number) => Buffer.from([n >> 8, n & 0xff]);
const u24 = (n: number) => Buffer.from([n >> 16, (n >> 8) & 0xff, n & 0xff]);
const ext = (type: number, data: Buffer) => Buffer.concat([u16(type), u16(data.length), data]);

test("ECH offered (extension 0xfe0d) and GREASE versions left out", () => {
  const versions = ext(43, Buffer.from([6, 0x3a, 0x3a, 0x03, 0x04, 0x03, 0x03]));
  const hello = helloOf(handmade(Buffer.concat([ext(0xfe0d, Buffer.from([0, 1, 2])), versions])));
  assert.equal(hello.ech, true);
  assert.deepEqual(hello.versions, ["1.2", "1.3"]);
});

test("malformed ClientHellos: each a TlsParseError or a reader verdict, never a hang", () => {
  const sni = (name: Buffer) =>
    ext(0, Buffer.concat([u16(name.length + 3), Buffer.from([0]), u16(name.length), name]));
  // an extension longer than its vector
  assert.throws(() => helloOf(handmade(Buffer.from([0, 0, 0, 40, 1]))), { code: "ETLSPARSE" });
  // a server name with a control character
  assert.throws(() => helloOf(handmade(sni(Buffer.from("a\nb.test")))), { code: "ETLSPARSE" });
  // a truncated body inside a complete message
  const good = handmade(sni(Buffer.from("ok.test")));
  assert.equal(helloOf(good).sni, "ok.test");
  const cut = Buffer.from(good);
  cut.writeUInt16BE(cut.readUInt16BE(3) - 20, 3);
  cut.writeUIntBE(cut.readUIntBE(6, 3) - 20, 6, 3);
  assert.throws(() => helloOf(cut.subarray(0, cut.length - 20)), { code: "ETLSPARSE" });

  const verdict = (bytes: Buffer) => {
    const reader = new HandshakeReader();
    reader.push(bytes);
    return reader.next();
  };
  assert.equal(verdict(good.subarray(0, 30)).kind, "more");
  assert.deepEqual(verdict(Buffer.from("GET / HTTP/1.1\r\n\r\n")), {
    kind: "malformed",
    reason: "not a TLS record",
  });
  assert.equal(verdict(Buffer.from([22, 3, 1, 0xff, 0xff])).kind, "malformed");
  // an empty handshake record carries nothing: read past, as OpenSSL reads past it
  assert.equal(verdict(Buffer.from([22, 3, 1, 0, 0])).kind, "more");
  assert.deepEqual(verdict(Buffer.from([21, 3, 3, 0, 2, 2, 40])), {
    kind: "alert",
    description: 40,
  });
  // a handshake message announced at 16 MiB
  assert.equal(verdict(Buffer.from([22, 3, 1, 0, 4, 1, 0xff, 0xff, 0xff])).kind, "malformed");
});

test("empty handshake records before and inside the ClientHello are read past", () => {
  const empty = Buffer.from([22, 3, 1, 0, 0]);
  const name = Buffer.from("ok.test");
  const good = handmade(
    ext(0, Buffer.concat([u16(name.length + 3), Buffer.from([0]), u16(name.length), name])),
  );
  // the hello split over two records with empty ones before, between and after
  const cut = 20;
  const first = Buffer.from(good.subarray(0, 5 + cut));
  first.writeUInt16BE(cut, 3);
  const rest = Buffer.concat([good.subarray(0, 5), good.subarray(5 + cut)]);
  rest.writeUInt16BE(good.length - 5 - cut, 3);
  const bytes = Buffer.concat([empty, empty, first, empty, rest, empty]);
  assert.equal(helloOf(bytes).sni, "ok.test");
  assert.equal(helloOf(bytes, 3).sni, "ok.test");
});

test("a ClientHello that never completes: malformed once 64 KiB are held", () => {
  const reader = new HandshakeReader();
  reader.push(Buffer.from([22, 3, 1, 0, 4, 1, 0x00, 0xff, 0xff])); // promises 65,535 bytes
  const record = Buffer.concat([Buffer.from([22, 3, 1, 0x40, 0]), Buffer.alloc(0x4000)]);
  let read = reader.next();
  let fed = 0;
  while (read.kind === "more" && fed < HANDSHAKE_LIMIT * 2) {
    reader.push(record);
    fed += record.length;
    read = reader.next();
  }
  assert.equal(read.kind, "malformed");
  assert.ok(fed <= HANDSHAKE_LIMIT + record.length, `${fed} bytes fed`);
});

/** The handshake bytes of TLS records (their payloads, headers dropped). */
function payloads(bytes: Buffer): Buffer {
  const parts: Buffer[] = [];
  for (let at = 0; at + 5 <= bytes.length; at += 5 + bytes.readUInt16BE(at + 3))
    parts.push(bytes.subarray(at + 5, at + 5 + bytes.readUInt16BE(at + 3)));
  return Buffer.concat(parts);
}

/** Handshake bytes as records of at most `size` bytes, `between` before each. */
function inRecords(handshake: Buffer, size: number, between = Buffer.alloc(0)): Buffer {
  const parts: Buffer[] = [];
  for (let at = 0; at < handshake.length; at += size) {
    const fragment = handshake.subarray(at, at + size);
    parts.push(between, Buffer.from([22, 3, 1, 0, fragment.length]), fragment);
  }
  return Buffer.concat(parts);
}

const EMPTY_RECORD = Buffer.from([22, 3, 1, 0, 0]);
const emptyRecords = (n: number) => Buffer.concat(Array.from({ length: n }, () => EMPTY_RECORD));

test("a real ClientHello split into one record per byte parses as it came", async () => {
  const { bytes } = await captureHello(
    nodeClient({ servername: "split.test", ALPNProtocols: ["h2"] }),
  );
  const split = inRecords(payloads(bytes), 1);
  assert.ok(records(split) > 200, `${records(split)} records`);
  assert.deepEqual(helloOf(split), helloOf(bytes));
  assert.deepEqual(helloOf(split, 7), helloOf(bytes));
  // up to 32 empty records in a row are read past, as OpenSSL reads past them
  assert.deepEqual(helloOf(inRecords(payloads(bytes), 100, emptyRecords(32))), helloOf(bytes));
});

test("more than 32 empty handshake records in a row: malformed, without reading the rest", () => {
  const name = Buffer.from("ok.test");
  const good = handmade(
    ext(0, Buffer.concat([u16(name.length + 3), Buffer.from([0]), u16(name.length), name])),
  );
  const reader = new HandshakeReader();
  reader.push(Buffer.concat([emptyRecords(33), good]));
  assert.deepEqual(reader.next(), {
    kind: "malformed",
    reason: "more than 32 empty handshake records in a row",
  });
  // a message announced at 65,000 bytes, then empty records instead of its body
  const flood = new HandshakeReader();
  flood.push(Buffer.from([22, 3, 1, 0, 4, 1, 0x00, 0xfd, 0xe8]));
  for (let i = 0; i < 5000; i++) flood.push(EMPTY_RECORD);
  assert.deepEqual(flood.next(), {
    kind: "malformed",
    reason: "more than 32 empty handshake records in a row",
  });
});

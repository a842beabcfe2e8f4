// What the server receives of a client that sends more than its ClientHello in its first write
// (0-RTT early data, a ChangeCipherSpec) while moat waits for the server's reply to judge it:
// the hello's records go on, the rest is held; a blocked connection never passes it on, an allowed
// one passes on every byte, in order. Real clients (Node's TLS) and servers (`openssl s_server`),
// a recording TCP hop in front of each server, the reference evaluator with parsed policies.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import { connect as netConnect, createServer, type AddressInfo, type Server } from "node:net";
import { Duplex } from "node:stream";
import { connect, createServer as tlsCreateServer, type SecureVersion } from "node:tls";
import { parsePolicy, type PolicyModel } from "../../../src/config/index.ts";
import { makeTlsHandler } from "../../../src/l7/tls/handler.ts";
import { CertificateProbe } from "../../../src/l7/tls/probe.ts";
import { HandshakeReader } from "../../../src/l7/tls/handshake-reader.ts";
import { relayStandIn, type RelayStandIn } from "../../helpers/l7-context.ts";
import { makeCertificates, type TestCertificates } from "../../helpers/test-certificates.ts";
import { startSServer } from "../../helpers/openssl-server.ts";

/** One connection a recording hop accepted: the bytes it received, and its end. */
interface Received {
  chunks: Buffer[];
  closed: Promise<void>;
}

/** A TCP hop in front of a server that records what each connection sends to it. */
interface RecordingHop {
  port: number;
  connections: Received[];
  server: Server;
}

let certs: TestCertificates;
let relay: RelayStandIn;
let retrying: Server;
const servers: ChildProcess[] = [];
const hops: Record<string, RecordingHop> = {};

/** openssl s_server with this leaf and its chain, only this version: its port. */
async function sServer(leaf: string, version: "tls1_2" | "tls1_3"): Promise<number> {
  const { port, child } = await startSServer(certs, leaf, version);
  servers.push(child);
  return port;
}

async function recordingHop(target: number): Promise<RecordingHop> {
  const connections: Received[] = [];
  const server = createServer((socket) => {
    const chunks: Buffer[] = [];
    const closed = new Promise<void>((resolve) => socket.once("close", () => resolve()));
    connections.push({ chunks, closed });
    const onward = netConnect(target, "127.0.0.1");
    socket.on("data", (d: Buffer) => {
      chunks.push(d);
      onward.write(d);
    });
    onward.on("data", (d: Buffer) => socket.write(d));
    onward.on("end", () => socket.end());
    socket.on("end", () => onward.end());
    onward.on("error", () => socket.destroy());
    socket.on("error", () => onward.destroy());
    socket.on("close", () => onward.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { port: (server.address() as AddressInfo).port, connections, server };
}

const policy = (rules: string): PolicyModel =>
  parsePolicy(
    `version: 1\nmode: prevent\ndefaults: { ingress: block, egress: block }\nattach: { cgroup: /moat-test }\nrules:\n${rules}`,
    "tls-held-bytes.yaml",
  );

/** Judged on the certificate: a TLS 1.2 hello waits for the server's Certificate message. */
const byCertificate = policy(`  - name: expiring
    direction: egress
    action: block
    layer7: { tls: { certificate: { not_after: "<30d" } } }
  - name: web
    direction: egress
    action: allow
`);
/** Judged on the chosen version: a hello offering 1.2 and 1.3 waits for the ServerHello. */
const byVersion = policy(`  - name: old-tls
    direction: egress
    action: block
    layer7: { tls: { version: ["<1.3"] } }
  - name: web
    direction: egress
    action: allow
`);

before(async () => {
  certs = makeCertificates([
    { name: "good", cn: "www.corp.test" },
    { name: "expired", cn: "www.corp.test", start: "200101000000Z", end: "210101000000Z" },
  ]);
  const [expired12, good13] = await Promise.all([
    sServer("expired", "tls1_2"),
    sServer("good", "tls1_3"),
  ]);
  hops.expired12 = await recordingHop(expired12);
  hops.good13 = await recordingHop(good13);
  // takes only P-384: Node's client offers its key share for X25519 first, so it retries
  const { cert, key } = certs.leaf("good");
  retrying = tlsCreateServer({
    cert: readFileSync(cert),
    key: readFileSync(key),
    ecdhCurve: "P-384",
    minVersion: "TLSv1.3",
  });
  retrying.on("secureConnection", (s) => s.end("HTTP/1.0 200 ok\r\n\r\n"));
  retrying.on("tlsClientError", () => {});
  await new Promise<void>((resolve) => retrying.listen(0, "127.0.0.1", resolve));
  hops.retry13 = await recordingHop((retrying.address() as AddressInfo).port);
  const trust = () => [new X509Certificate(readFileSync(certs.root))];
  relay = await relayStandIn(
    makeTlsHandler({
      trust,
      probe: new CertificateProbe({ timeoutMs: 400, trust }),
      serverTimeoutMs: 2000,
      helloTimeoutMs: 2000,
    }),
  );
});

after(async () => {
  for (const child of servers) if (child.exitCode === null) child.kill("SIGKILL");
  await relay?.close();
  for (const hop of Object.values(hops)) hop.server.close();
  retrying?.close();
  certs?.remove();
});

const RECORD_HEADER = 5;
/** An application_data record, as 0-RTT early data comes after a TLS 1.3 ClientHello. */
const EARLY_DATA = Buffer.concat([
  Buffer.from([0x17, 3, 3, 0, 16]),
  Buffer.from("early data bytes"),
]);
/** The ChangeCipherSpec record of TLS 1.3's middlebox compatibility (RFC 8446 D.4). */
const CHANGE_CIPHER_SPEC = Buffer.from([0x14, 3, 3, 0, 1, 1]);

/** The hello's one record as records of at most `size` payload bytes each. */
function inRecords(hello: Buffer, size: number): Buffer {
  const header = hello.subarray(0, 3);
  const payload = hello.subarray(RECORD_HEADER);
  const records: Buffer[] = [];
  for (let at = 0; at < payload.length; at += size) {
    const piece = payload.subarray(at, at + size);
    const length = Buffer.from([piece.length >> 8, piece.length & 0xff]);
    records.push(header, length, piece);
  }
  return Buffer.concat(records);
}

interface Sent {
  /** "ok" with the answer's first line, or the client's error code. */
  seen: string;
  /** The ClientHello's records as they went out. */
  hello: Buffer;
  /** The client's first write: the hello's records, then what follows them. */
  first: Buffer;
}

/**
 * A TLS client through the stand-in relay whose first write (the ClientHello's record) becomes
 * `records(hello)` followed by `extra`, in one write.
 */
function clientSending(
  servername: string,
  maxVersion: SecureVersion,
  records: (hello: Buffer) => Buffer,
  extra: Buffer,
): Promise<Sent> {
  return new Promise((resolve) => {
    const raw = netConnect(relay.port, "127.0.0.1");
    let hello: Buffer = Buffer.alloc(0);
    let first: Buffer = Buffer.alloc(0);
    const wire = new Duplex({
      read: () => raw.resume(),
      write(chunk: Buffer, _encoding, done) {
        if (first.length > 0) return raw.write(chunk, done);
        hello = records(chunk);
        first = Buffer.concat([hello, extra]);
        raw.write(first, done);
      },
      final: (done) => raw.end(done),
    });
    raw.on("data", (d: Buffer) => void (wire.push(d) || raw.pause()));
    raw.on("end", () => wire.push(null));
    raw.on("error", (e: NodeJS.ErrnoException) => wire.destroy(e));
    const socket = connect({ socket: wire, servername, maxVersion, rejectUnauthorized: false });
    let answer = "";
    socket.on("secureConnect", () => socket.write("GET / HTTP/1.0\r\n\r\n"));
    socket.on("data", (d: Buffer) => (answer += d.toString()));
    const seen = (what: string) => {
      raw.destroy();
      resolve({ seen: what, hello, first });
    };
    socket.on("end", () => seen(`ok ${answer.split("\r\n")[0]}`));
    socket.on("error", (e: NodeJS.ErrnoException) => seen(e.code ?? e.message));
  });
}

/** Through the relay to `server`'s hop: what the client saw, the decision, what the server got. */
async function through(
  model: PolicyModel,
  server: "expired12" | "good13" | "retry13",
  maxVersion: SecureVersion,
  records: (hello: Buffer) => Buffer,
  extra: Buffer,
) {
  const hop = hops[server];
  assert.ok(hop);
  const handled = relay.next(model, { ip: "127.0.0.1", port: hop.port }, ["www.corp.test"]);
  const sent = await clientSending("www.corp.test", maxVersion, records, extra);
  await handled.done;
  // the client's own connection comes after moat's probe, if there was one
  const own = hop.connections.at(-1);
  assert.ok(own, "the ClientHello reached the server");
  await own.closed;
  const [report] = handled.reports;
  assert.ok(report, `a report (${handled.logs.join("; ")})`);
  return { ...sent, rule: report.decision.rule, received: Buffer.concat(own.chunks) };
}

/** How many ClientHellos (handshake type 1) the clear-text start of `bytes` holds. */
function clientHellos(bytes: Buffer): number {
  const reader = new HandshakeReader();
  reader.push(bytes);
  let count = 0;
  for (let read = reader.next(); read.kind === "message"; read = reader.next())
    if (read.type === 1) count++;
  return count;
}

const asIs = (hello: Buffer) => hello;
const hex = (b: Buffer) => b.toString("hex");

test("blocked on the certificate (TLS 1.2): the server got the ClientHello's record, not the early data after it", async () => {
  const r = await through(byCertificate, "expired12", "TLSv1.2", asIs, EARLY_DATA);
  assert.equal(r.seen, "ECONNRESET");
  assert.equal(r.rule, "expiring");
  assert.equal(hex(r.received.subarray(0, r.hello.length)), hex(r.hello));
  assert.equal(hex(r.received.subarray(r.hello.length)), "", "nothing after the hello's record");
});

test("blocked on the chosen version: a hello in several records goes on whole, the records after it do not", async () => {
  const extra = Buffer.concat([CHANGE_CIPHER_SPEC, EARLY_DATA]);
  const r = await through(byVersion, "expired12", "TLSv1.3", (h) => inRecords(h, 100), extra);
  assert.equal(r.seen, "ECONNRESET");
  assert.equal(r.rule, "old-tls");
  assert.ok(r.hello.length > 3 * RECORD_HEADER + 200, "the hello took several records");
  assert.equal(hex(r.received.subarray(0, r.hello.length)), hex(r.hello), "the hello's records");
  assert.equal(hex(r.received.subarray(r.hello.length)), "", "nothing after the hello's records");
});

test("allowed on the chosen version: the server gets the client's first write whole and in order", async () => {
  for (const records of [asIs, (h: Buffer) => inRecords(h, 100)]) {
    const r = await through(byVersion, "good13", "TLSv1.3", records, CHANGE_CIPHER_SPEC);
    assert.equal(r.seen, "ok HTTP/1.0 200 ok");
    assert.equal(r.rule, "web");
    assert.equal(hex(r.received.subarray(0, r.first.length)), hex(r.first));
  }
});

test("allowed on the chosen version after a HelloRetryRequest: the second ClientHello goes on and the handshake completes", async () => {
  const r = await through(byVersion, "retry13", "TLSv1.3", asIs, Buffer.alloc(0));
  assert.equal(r.seen, "ok HTTP/1.0 200 ok");
  assert.equal(r.rule, "web");
  assert.equal(hex(r.received.subarray(0, r.first.length)), hex(r.first));
  assert.equal(clientHellos(r.received), 2, "the server read the hello and the retried one");
});

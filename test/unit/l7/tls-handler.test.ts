// moat's TLS handler between real clients and `openssl s_server` (TLS 1.2 and 1.3) with
// certificates made here, judged by the reference evaluator with parsed policies: certificates
// from the handshake (TLS 1.2) or moat's probe (TLS 1.3), chains, expiry, wrong names, self-signed,
// a pinned fingerprint, a silent server, a malformed ClientHello. The client sees the verdict:
// a completed exchange or a reset.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import {
  connect as netConnect,
  createServer,
  type AddressInfo,
  type Server,
  type Socket,
} from "node:net";
import { Duplex } from "node:stream";
import { connect, type SecureVersion } from "node:tls";
import { parsePolicy } from "../../../src/config/index.ts";
import type { PolicyModel } from "../../../src/config/index.ts";
import { makeTlsHandler } from "../../../src/l7/tls/handler.ts";
import { CertificateProbe } from "../../../src/l7/tls/probe.ts";
import { relayStandIn, type RelayStandIn } from "../../helpers/l7-context.ts";
import { makeCertificates, type TestCertificates } from "../../helpers/test-certificates.ts";
import { startSServer } from "../../helpers/openssl-server.ts";

let certs: TestCertificates;
let relay: RelayStandIn;
let silent: Server;
const servers: ChildProcess[] = [];
const ports: Record<string, number> = {};

/** openssl s_server with this leaf, its chain (none for "self") and only this version. */
async function sServer(name: string, leaf: string, version: "tls1_2" | "tls1_3"): Promise<void> {
  const { port, child } = await startSServer(certs, leaf, version, leaf !== "self");
  servers.push(child);
  ports[name] = port;
}

const policy = (rules: string): PolicyModel =>
  parsePolicy(
    `version: 1\nmode: prevent\ndefaults: { ingress: block, egress: block }\nattach: { cgroup: /moat-test }\nrules:\n${rules}`,
    "tls-handler.yaml",
  );

let byCertificate: PolicyModel;
let byChain: PolicyModel;
const trustedCorp = `  - name: trusted-corp
    direction: egress
    action: allow
    layer7: { tls: { certificate: { san: ["*.corp.test"], valid: true, issuer: "*moat test intermediate*" } } }
`;
const byName = policy(`  - name: corp-by-name
    direction: egress
    action: allow
    layer7: { tls: { sni: [www.corp.test] } }
`);

/** A TLS client through the stand-in relay: "ok" with the answer's first line, or the error code. */
function client(servername: string, maxVersion: SecureVersion = "TLSv1.3"): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect({
      host: "127.0.0.1",
      port: relay.port,
      servername,
      maxVersion,
      rejectUnauthorized: false,
    });
    let answer = "";
    socket.on("secureConnect", () => socket.write("GET / HTTP/1.0\r\n\r\n"));
    socket.on("data", (d: Buffer) => (answer += d.toString()));
    socket.on("end", () => resolve(`ok ${answer.split("\r\n")[0]}`));
    socket.on("error", (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
  });
}

const handler = () =>
  makeTlsHandler({
    trust: () => [new X509Certificate(readFileSync(certs.root))],
    probe: new CertificateProbe({
      timeoutMs: 400,
      trust: () => [new X509Certificate(readFileSync(certs.root))],
    }),
    serverTimeoutMs: 800,
    helloTimeoutMs: 500,
  });

before(async () => {
  certs = makeCertificates([
    { name: "good", cn: "www.corp.test" },
    { name: "expired", cn: "www.corp.test", start: "200101000000Z", end: "210101000000Z" },
    { name: "soon", cn: "www.corp.test", days: 10 },
    { name: "wrong", cn: "wrong.test" },
    { name: "self", cn: "www.corp.test", selfSigned: true },
  ]);
  await Promise.all([
    sServer("good13", "good", "tls1_3"),
    sServer("good12", "good", "tls1_2"),
    sServer("expired12", "expired", "tls1_2"),
    sServer("soon13", "soon", "tls1_3"),
    sServer("wrong13", "wrong", "tls1_3"),
    sServer("self13", "self", "tls1_3"),
  ]);
  silent = createServer((s) => s.on("error", () => {}));
  await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
  ports.silent = (silent.address() as AddressInfo).port;
  const pin = new X509Certificate(
    readFileSync(certs.leaf("self").cert),
  ).fingerprint256.toLowerCase();
  byCertificate = policy(`  - name: expiring
    direction: egress
    action: block
    layer7: { tls: { certificate: { not_after: "<30d" } } }
  - name: pinned
    direction: egress
    action: allow
    layer7: { tls: { certificate: { fingerprint: ["${pin}"] } } }
${trustedCorp}`);
  byChain = policy(trustedCorp);
  relay = await relayStandIn(handler());
});

after(async () => {
  for (const child of servers) if (child.exitCode === null) child.kill("SIGKILL");
  await relay?.close();
  silent?.close();
  certs?.remove();
});

async function through(
  model: PolicyModel,
  server: string,
  sni: string,
  maxVersion?: SecureVersion,
) {
  const handled = relay.next(model, { ip: "127.0.0.1", port: ports[server] ?? 0 }, [sni]);
  const seen = await client(sni, maxVersion);
  await handled.done;
  const [report] = handled.reports;
  assert.ok(report, `a report (${handled.logs.join("; ")})`);
  return { seen, report, upstreams: handled.upstreams };
}

test("TLS 1.3: the certificate comes from moat's probe, before the ClientHello goes on; a trusted chain is allowed", async () => {
  const { seen, report, upstreams } = await through(byCertificate, "good13", "www.corp.test");
  assert.equal(seen, "ok HTTP/1.0 200 ok");
  assert.equal(report.decision.rule, "trusted-corp");
  const tls = report.layer7.tls;
  assert.equal(tls?.certificate?.source, "probe");
  assert.equal(tls?.certificate?.valid, true);
  assert.deepEqual(tls?.certificate?.sans, ["www.corp.test"]);
  assert.equal(tls?.version, "1.3");
  assert.match(tls?.cipher ?? "", /^TLS_AES_|^TLS_CHACHA20/);
  assert.equal(tls?.sni, "www.corp.test");
  assert.equal(report.splice, "copy");
  assert.equal(upstreams, 2, "the probe and the client's own connection");
});

test("the probed certificate is cached by (address, port, SNI): the next connection does not probe", async () => {
  const again = await through(byCertificate, "good13", "www.corp.test");
  assert.equal(again.report.decision.rule, "trusted-corp");
  assert.equal(again.report.layer7.tls?.certificate?.source, "probe");
  assert.equal(again.upstreams, 1);
});

test("TLS 1.2: the certificate comes from the server's own Certificate message", async () => {
  const { seen, report } = await through(byCertificate, "good12", "www.corp.test", "TLSv1.2");
  assert.equal(seen, "ok HTTP/1.0 200 ok");
  assert.equal(report.decision.rule, "trusted-corp");
  assert.equal(report.layer7.tls?.certificate?.source, "handshake");
  assert.equal(report.layer7.tls?.version, "1.2");
  assert.match(report.layer7.tls?.cipher ?? "", /^TLS_ECDHE_ECDSA_WITH_/);
});

test("an expired certificate (TLS 1.2 handshake) is not valid: the client is reset", async () => {
  const { seen, report } = await through(byCertificate, "expired12", "www.corp.test", "TLSv1.2");
  assert.equal(seen, "ECONNRESET");
  assert.equal(report.decision.verdict, "blocked");
  assert.equal(report.decision.rule, "expiring", "expired: less than 30 days left");
  assert.equal(report.layer7.tls?.certificate?.valid, false);
  assert.equal(report.layer7.tls?.certificate?.source, "handshake");
});

test("a wrong name or a self-signed certificate: reset before any byte reaches the server", async () => {
  for (const server of ["wrong13", "self13"]) {
    const { seen, report, upstreams } = await through(byChain, server, "www.corp.test");
    assert.equal(seen, "ECONNRESET", server);
    assert.equal(report.decision.rule, "default", server);
    assert.equal(upstreams, 1, `${server}: only the probe connected`);
  }
});

test("a pinned fingerprint allows the self-signed server; under 30 days left blocks a trusted chain", async () => {
  const pinned = await through(byCertificate, "self13", "www.corp.test");
  assert.equal(pinned.seen, "ok HTTP/1.0 200 ok");
  assert.equal(pinned.report.decision.rule, "pinned");
  const soon = await through(byCertificate, "soon13", "www.corp.test");
  assert.equal(soon.seen, "ECONNRESET");
  assert.equal(soon.report.decision.rule, "expiring");
});

test("no certificate condition: judged at the ClientHello, no probe", async () => {
  const { seen, report, upstreams } = await through(byName, "good13", "www.corp.test");
  assert.equal(seen, "ok HTTP/1.0 200 ok");
  assert.equal(report.decision.rule, "corp-by-name");
  assert.equal(upstreams, 1);
  assert.equal(report.layer7.tls?.certificate, undefined);
  assert.deepEqual(report.layer7.tls?.offered, ["1.2", "1.3"]);
});

// the probe's 400 ms timeout ends it; were there none, the runner's per-test timeout would fail it
test("a server that never answers: the probe times out, the certificate is unknown, unknown: block decides", async () => {
  const { seen, report } = await through(byChain, "silent", "www.corp.test");
  assert.equal(seen, "ECONNRESET");
  assert.equal(report.decision.rule, "default");
  assert.deepEqual(report.layer7.tls?.unseen, ["certificate"]);
});

const UNREAD = { tls: { unseen: ["sni", "certificate"] } };

test("a malformed ClientHello: what it would show is unseen, rules follow their unknown", async () => {
  const { seen, handled } = await rawClient(byName, (s) =>
    s.write(Buffer.from([22, 3, 1, 0, 6, 1, 0, 0, 2, 3, 3])),
  );
  assert.equal(seen, "ECONNRESET");
  assert.deepEqual(
    handled.reports.map((r) => [r.decision.rule, r.layer7]),
    [["default", UNREAD]],
  );
  assert.match(handled.logs.join(), /malformed ClientHello/);
});

const noEvil = policy(`  - name: no-evil
    direction: egress
    action: block
    layer7: { tls: { sni: [evil.example], trust_sni: true } }
  - name: web
    direction: egress
    action: allow
`);

/**
 * A TLS client through the stand-in relay whose first write is changed on the way (a record put
 * before it, a byte of its server name replaced): "ok" with the answer's first line, or the error.
 */
function rewritingClient(servername: string, rewrite: (hello: Buffer) => Buffer): Promise<string> {
  return new Promise((resolve) => {
    const raw = netConnect(relay.port, "127.0.0.1");
    let first = true;
    const wire = new Duplex({
      read: () => raw.resume(),
      write(chunk: Buffer, _encoding, done) {
        raw.write(first ? rewrite(chunk) : chunk, done);
        first = false;
      },
      final: (done) => raw.end(done),
    });
    raw.on("data", (d: Buffer) => void (wire.push(d) || raw.pause()));
    raw.on("end", () => wire.push(null));
    raw.on("error", (e: NodeJS.ErrnoException) => wire.destroy(e));
    const socket = connect({ socket: wire, servername, rejectUnauthorized: false });
    let answer = "";
    socket.on("secureConnect", () => socket.write("GET / HTTP/1.0\r\n\r\n"));
    socket.on("data", (d: Buffer) => (answer += d.toString()));
    // the TLS socket does not end the stream under it: the connection is closed here
    const seen = (what: string) => {
      raw.destroy();
      resolve(what);
    };
    socket.on("end", () => seen(`ok ${answer.split("\r\n")[0]}`));
    socket.on("error", (e: NodeJS.ErrnoException) => seen(e.code ?? e.message));
  });
}

async function rewritten(model: PolicyModel, sni: string, rewrite: (hello: Buffer) => Buffer) {
  const handled = relay.next(model, { ip: "127.0.0.1", port: ports.good13 ?? 0 }, [sni]);
  const seen = await rewritingClient(sni, rewrite);
  await handled.done;
  return { seen, handled };
}

const EMPTY_HANDSHAKE_RECORD = Buffer.from([22, 3, 1, 0, 0]);
const afterEmpty = (hello: Buffer) => Buffer.concat([EMPTY_HANDSHAKE_RECORD, hello]);

test("an empty handshake record before the ClientHello is read past: the SNI is judged", async () => {
  const evil = await rewritten(noEvil, "evil.example", afterEmpty);
  assert.equal(evil.seen, "ECONNRESET");
  assert.deepEqual(
    evil.handled.reports.map((r) => [r.decision.rule, r.layer7.tls?.sni]),
    [["no-evil", "evil.example"]],
  );
  assert.equal(evil.handled.upstreams, 0, "nothing reached the server");
  // the server reads past it too: an allowed hello completes
  const good = await rewritten(noEvil, "www.corp.test", afterEmpty);
  assert.equal(good.seen, "ok HTTP/1.0 200 ok");
  assert.deepEqual(
    good.handled.reports.map((r) => [r.decision.rule, r.layer7.tls?.sni]),
    [["web", "www.corp.test"]],
  );
});

test("a ClientHello moat cannot read follows unknown: block, never forwarded as if it had no SNI", async () => {
  for (const bad of [" ", "\x80"]) {
    const { seen, handled } = await rewritten(noEvil, "evil.example", (hello) => {
      const at = hello.indexOf("evil.example");
      return Buffer.concat([
        hello.subarray(0, at + 4),
        Buffer.from(bad, "latin1"),
        hello.subarray(at + 5),
      ]);
    });
    assert.equal(seen, "ECONNRESET", JSON.stringify(bad));
    assert.deepEqual(
      handled.reports.map((r) => [r.decision.verdict, r.decision.rule, r.layer7]),
      [["blocked", "no-evil", UNREAD]],
    );
    assert.equal(handled.upstreams, 0);
    assert.match(handled.logs.join(), /server name is not a host name/);
  }
});

test("an allow rule with unknown: allow lets an unreadable ClientHello through; readable ones are judged", async () => {
  const anyName = policy(`  - name: any-tls
    direction: egress
    action: allow
    layer7: { tls: { sni: ["*.corp.test"], trust_sni: true, unknown: allow } }
`);
  // to the silent server: s_server serves one connection at a time
  const unreadable = relay.next(anyName, { ip: "127.0.0.1", port: ports.silent ?? 0 });
  const s = netConnect(relay.port, "127.0.0.1", () =>
    s.write(Buffer.from([22, 3, 1, 0, 6, 1, 0, 0, 2, 3, 3])),
  );
  s.on("error", () => {});
  await unreadable.done;
  s.destroy();
  assert.deepEqual(
    unreadable.reports.map((r) => [r.decision.verdict, r.decision.rule, r.layer7]),
    [["allowed", "any-tls", UNREAD]],
  );
  assert.equal(unreadable.upstreams, 1, "passed on to the server");
  const readable = await rewritten(anyName, "www.corp.test", (hello) => hello);
  assert.equal(readable.seen, "ok HTTP/1.0 200 ok");
  assert.deepEqual(
    readable.handled.reports.map((r) => [r.decision.rule, r.layer7.tls?.sni]),
    [["any-tls", "www.corp.test"]],
  );
});

/** Raw bytes to the stand-in relay; what the client saw (a reset, or the connection closed). */
async function rawClient(model: PolicyModel, send: (s: Socket) => void) {
  const handled = relay.next(model, { ip: "127.0.0.1", port: ports.good13 ?? 0 });
  const seen = await new Promise<string>((resolve) => {
    const s = netConnect(relay.port, "127.0.0.1", () => send(s));
    s.on("error", (e: NodeJS.ErrnoException) => resolve(e.code ?? ""));
    s.on("close", () => resolve("closed"));
  });
  await handled.done;
  return { seen, handled };
}

test("a client that stalls mid-ClientHello is judged with the hello unseen when the hello timeout ends", async () => {
  const { seen, handled } = await rawClient(byName, (s) =>
    s.write(Buffer.from([22, 3, 1, 2, 0, 1, 0, 1])),
  );
  assert.equal(seen, "ECONNRESET");
  assert.deepEqual(
    handled.reports.map((r) => [r.decision.rule, r.layer7]),
    [["default", UNREAD]],
  );
  // the hello timeout, not the client, ended it
  assert.match(handled.logs.join(), /no complete ClientHello in time/);
});

test("a ClientHello announced over 64 KiB is refused as soon as 64 KiB are held", async () => {
  const { seen, handled } = await rawClient(byName, (s) => {
    s.write(Buffer.from([22, 3, 1, 0x40, 0, 1, 0x01, 0x00, 0x00]));
    const record = Buffer.concat([Buffer.from([22, 3, 1, 0x40, 0]), Buffer.alloc(0x4000)]);
    const pump = () => {
      while (s.writable && s.write(record));
    };
    s.on("drain", pump);
    pump();
  });
  assert.equal(seen, "ECONNRESET");
  assert.deepEqual(
    handled.reports.map((r) => r.decision.rule),
    ["default"],
  );
  assert.match(handled.logs.join(), /malformed/);
});

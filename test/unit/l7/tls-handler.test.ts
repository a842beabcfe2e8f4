// moat's TLS handler between real clients and `openssl s_server` (TLS 1.2 and 1.3) with
// certificates made here, judged by the reference evaluator with parsed policies: certificates
// from the handshake (TLS 1.2) or moat's probe (TLS 1.3), chains, expiry, wrong names, self-signed,
// a pinned fingerprint, a silent server, a malformed ClientHello. The client sees the verdict:
// a completed exchange or a reset.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import {
  connect as netConnect,
  createServer,
  type AddressInfo,
  type Server,
  type Socket,
} from "node:net";
import { connect, type SecureVersion } from "node:tls";
import { parsePolicy } from "../../../src/config/index.ts";
import type { PolicyModel } from "../../../src/config/index.ts";
import { makeTlsHandler } from "../../../src/l7/tls/handler.ts";
import { CertificateProbe } from "../../../src/l7/tls/probe.ts";
import { relayStandIn, type RelayStandIn } from "../../helpers/l7-context.ts";
import { makeCertificates, type TestCertificates } from "../../helpers/test-certificates.ts";

let certs: TestCertificates;
let relay: RelayStandIn;
let silent: Server;
const servers: ChildProcess[] = [];
const ports: Record<string, number> = {};

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((resolve) => s.listen(0, "127.0.0.1", resolve));
  const { port } = s.address() as AddressInfo;
  await new Promise((resolve) => s.close(resolve));
  return port;
}

/** openssl s_server answering HTTP (-www) with this leaf, its chain and only this version. */
async function sServer(name: string, leaf: string, version: "tls1_2" | "tls1_3"): Promise<void> {
  const port = await freePort();
  const { cert, key } = certs.leaf(leaf);
  const chain = leaf === "self" ? [] : ["-cert_chain", certs.intermediate];
  const child = spawn(
    "openssl",
    [
      "s_server",
      "-accept",
      `127.0.0.1:${port}`,
      "-cert",
      cert,
      "-key",
      key,
      ...chain,
      `-${version}`,
      "-www",
      "-quiet",
    ],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  servers.push(child);
  await new Promise<void>((resolve, reject) => {
    child.once("exit", (code) => reject(new Error(`s_server ${name} exited ${code}`)));
    const ready = () => {
      const probe = netConnect(port, "127.0.0.1", () => {
        probe.destroy();
        resolve();
      });
      probe.once("error", () => setTimeout(ready, 20));
    };
    ready();
  });
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

test("a malformed ClientHello is judged as no known protocol: layer7 {} and the defaults", async () => {
  const { seen, handled } = await rawClient(byName, (s) =>
    s.write(Buffer.from([22, 3, 1, 0, 6, 1, 0, 0, 2, 3, 3])),
  );
  assert.equal(seen, "ECONNRESET");
  assert.deepEqual(
    handled.reports.map((r) => [r.decision.rule, r.layer7]),
    [["default", {}]],
  );
  assert.match(handled.logs.join(), /malformed ClientHello/);
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

test("a client that stalls mid-ClientHello is judged without a protocol when the hello timeout ends", async () => {
  const { seen, handled } = await rawClient(byName, (s) =>
    s.write(Buffer.from([22, 3, 1, 2, 0, 1, 0, 1])),
  );
  assert.equal(seen, "ECONNRESET");
  assert.deepEqual(
    handled.reports.map((r) => [r.decision.rule, r.layer7]),
    [["default", {}]],
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

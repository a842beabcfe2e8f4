// TLS certificate rules through the daemon's relay: openssl s_server in the peer namespace shows
// an expired certificate, one for another name, a self-signed one and a good chain (leaf and
// intermediate of a test root); curl and openssl s_client under the attached cgroup connect
// over TLS 1.2 (moat reads the certificate in the handshake) and TLS 1.3 (moat's own probe sees
// it). In prevent mode only the good chain gets through, the others are reset during the
// handshake; a reload to detect-mode rules on each certificate field lets every connection
// through and reports which rule saw what. Events carry the certificate's facts and their
// source.
//
// `valid` means "verifies against the system CA store": the daemon runs with SSL_CERT_FILE
// naming the test root, the way a host adds a private CA to what Node reads as that store.
//
// Run time: about 25 s on an idle machine (the daemon's start is most of it); keep it under 60 s.
import { test } from "node:test";
import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import { cgroupForTest, startCgroupLab } from "../helpers/cgroup-lab.ts";
import { runIn, type Run } from "../helpers/cgroup-run.ts";
import { daemonSaid, sServer, storedEvents, until, type EventJson } from "../helpers/l7-lab.ts";
import type { Lab } from "../helpers/netns.ts";
import { reloadPolicy } from "../helpers/policy-reload.ts";
import { makeCertificates } from "../helpers/test-certificates.ts";

const NAME = "secure.moat.test";
/** One server per certificate, each on a port of its own. */
const PORTS = { expired: 4431, wrong: 4432, self: 4433, good: 4434 } as const;
type Server = keyof typeof PORTS;
const ALL = Object.values(PORTS).join(", ");

/**
 * Prevent: one certificate refused by its fingerprint (a rule that needs the certificate before
 * the allowing one), then only a valid chain for the name, issued by the test intermediate.
 */
function prevent(l: Lab, cgroup: string, revoked: string): string {
  return `version: 1
mode: prevent
defaults: { ingress: allow, egress: allow }
attach: { interfaces: [${l.ifB}], cgroup: ${cgroup} }
rules:
  - { name: revoked, direction: egress, action: block, layer4: { protocol: tcp, port: [${ALL}] }, layer7: { tls: { certificate: { fingerprint: ["${revoked}"] } } } }
  - name: trusted-cert
    direction: egress
    action: allow
    log: true
    layer4: { protocol: tcp, port: [${ALL}] }
    layer7: { tls: { certificate: { valid: true, subject_cn: ${NAME}, san: [${NAME}], issuer: "moat test intermediate" } } }
  - { name: other-tls, direction: egress, action: block, layer4: { protocol: tcp, port: [${ALL}] }, layer7: { tls: {} } }
`;
}

/** Detect: a rule per certificate field, each reporting what prevent mode would refuse. */
function detect(l: Lab, cgroup: string, selfFingerprint: string): string {
  const watch = (name: string, certificate: string) =>
    `  - { name: ${name}, direction: egress, action: block, mode: detect, layer4: { protocol: tcp, port: [${ALL}] }, layer7: { tls: { certificate: ${certificate} } } }`;
  return `version: 1
mode: prevent
defaults: { ingress: allow, egress: allow }
attach: { interfaces: [${l.ifB}], cgroup: ${cgroup} }
rules:
${watch("watch-pinned", `{ fingerprint: ["${selfFingerprint}"] }`)}
${watch("watch-untrusted", "{ valid: false }")}
${watch("watch-name", `{ san: ["wrong.*"] }`)}
${watch("watch-expiry", `{ not_after: "<30d" }`)}
`;
}

test("L7 relay: TLS certificates judged by the daemon, prevent and detect", async (t) => {
  const cg = cgroupForTest(t, "l7certs");
  const certs = makeCertificates([
    { name: "expired", cn: NAME, start: "240101000000Z", end: "240201000000Z" },
    { name: "wrong", cn: "wrong.moat.test" },
    { name: "self", cn: NAME, selfSigned: true },
    // valid, and close to its end: the detect phase's not_after rule sees it
    { name: "good", cn: NAME, days: 10 },
  ]);
  cg.onClose(() => certs.remove());
  const cert = (s: Server) => new X509Certificate(readFileSync(certs.leaf(s).cert));
  const before = process.env.SSL_CERT_FILE;
  process.env.SSL_CERT_FILE = certs.root; // the daemon's system store: the test root
  const lab = await startCgroupLab(
    cg,
    "l7 certs",
    (l) => prevent(l, cg.cgroup, cert("self").fingerprint256),
    [],
  ).finally(() => {
    if (before === undefined) delete process.env.SSL_CERT_FILE;
    else process.env.SSL_CERT_FILE = before;
  });
  for (const [s, port] of Object.entries(PORTS) as [Server, number][]) {
    const { cert: file, key } = certs.leaf(s);
    const chain = s === "self" ? [] : ["-cert_chain", certs.intermediate];
    const server = await sServer(lab, port, file, key, chain);
    cg.onClose(() => server.kill());
  }
  const inCgroup = (cmd: string[]): Run => runIn(lab.b, cg.dir, cmd);
  /** curl https://NAME:PORT/ at the peer, without a lookup; TLS 1.2 at most, or 1.3 only. */
  const curl = (s: Server, version: "1.2" | "1.3", trust = ["-k"]) =>
    inCgroup([
      "curl",
      "-sS",
      "--max-time",
      "5",
      ...trust,
      ...(version === "1.2" ? ["--tls-max", "1.2"] : ["--tlsv1.3"]),
      "--resolve",
      `${NAME}:${PORTS[s]}:${lab.v4.a}`,
      `https://${NAME}:${PORTS[s]}/`,
    ]);
  /** openssl s_client: handshakes, then reads EOF on stdin and closes. */
  const sClient = (s: Server, version: "1.2" | "1.3") =>
    inCgroup([
      "openssl",
      "s_client",
      "-brief",
      `-tls${version.replace(".", "_")}`,
      "-connect",
      `${lab.v4.a}:${PORTS[s]}`,
      "-servername",
      NAME,
    ]);
  const line = (type: string, s: Server, rule: string, client: string) =>
    daemonSaid(
      lab,
      new RegExp(
        `${type} egress tcp \\S+ -> \\S+:${PORTS[s]} TLS ${NAME} by rule ${rule} \\(${client} pid`,
      ),
    );

  await t.test("a good chain passes, TLS 1.2 (handshake) and 1.3 (probe)", async () => {
    // the client checks the chain against the test root too
    const r = curl("good", "1.2", ["--cacert", certs.root]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /s_server/);
    await line("ALLOWED", "good", "trusted-cert", "curl");
    const s = sClient("good", "1.3");
    assert.equal(s.status, 0, s.stderr);
    assert.match(s.stderr, /CONNECTION ESTABLISHED[\s\S]*Protocol version: TLSv1\.3/);
    await line("ALLOWED", "good", "trusted-cert", "openssl");
  });

  await t.test("an expired certificate is reset during the handshake", async () => {
    const r = curl("expired", "1.2");
    assert.equal(r.status, 35, r.stderr); // 35: the TLS handshake failed (reset)
    assert.equal(r.stdout, "");
    await line("BLOCKED", "expired", "other-tls", "curl");
  });

  await t.test(
    "a certificate for another name, seen by moat's probe (TLS 1.3), is reset",
    async () => {
      const r = curl("wrong", "1.3");
      assert.equal(r.status, 35, r.stderr);
      await line("BLOCKED", "wrong", "other-tls", "curl");
    },
  );

  await t.test("a self-signed certificate, refused by its fingerprint, is reset", async () => {
    const s = sClient("self", "1.2");
    assert.notEqual(s.status, 0, s.stderr);
    assert.doesNotMatch(s.stderr, /CONNECTION ESTABLISHED/);
    await line("BLOCKED", "self", "revoked", "openssl");
  });

  await t.test("the events carry the certificate's facts and where they came from", async () => {
    const relayed = await relayEvents(lab, 5);
    const facts = relayed.map((e) => {
      const c = e.layer7?.tls?.certificate;
      return [e.type, e.rule, e.remote?.port, c?.subject_cn, c?.valid, c?.source];
    });
    assert.deepEqual(facts, [
      ["allowed", "trusted-cert", PORTS.good, NAME, true, "handshake"],
      ["allowed", "trusted-cert", PORTS.good, NAME, true, "probe"],
      ["blocked", "other-tls", PORTS.expired, NAME, false, "handshake"],
      ["blocked", "other-tls", PORTS.wrong, "wrong.moat.test", true, "probe"],
      ["blocked", "revoked", PORTS.self, NAME, false, "handshake"],
    ]);
    const byPort = (port: number) => relayed.find((e) => e.remote?.port === port);
    for (const s of ["good", "expired", "wrong", "self"] as const) {
      const c = byPort(PORTS[s])?.layer7?.tls?.certificate;
      assert.equal(c?.fingerprint, cert(s).fingerprint256, s);
      assert.equal(c?.not_after, cert(s).validToDate.toISOString(), s);
    }
    const issuer = (s: Server) => byPort(PORTS[s])?.layer7?.tls?.certificate?.issuer;
    // in the certificate's order (openssl ca put the CN first)
    assert.equal(issuer("good"), "CN=moat test intermediate, O=moat tests");
    assert.equal(issuer("self"), `CN=${NAME}`);
    assert.deepEqual(byPort(PORTS.wrong)?.layer7?.tls?.certificate?.sans, ["wrong.moat.test"]);
    // forwarded ones left the relay (the sockmap, or splice(2) when it cannot), refused ones not
    assert.deepEqual(relayed.map(left), ["spliced", "spliced", "none", "none", "none"]);
  });

  await t.test("detect: each field's rule reports, every connection goes through", async () => {
    await reloadPolicy(lab, detect(lab, cg.cgroup, cert("self").fingerprint256));
    const self = sClient("self", "1.2");
    assert.match(self.stderr, /CONNECTION ESTABLISHED/);
    await line("DETECTED", "self", "watch-pinned", "openssl");
    const expired = curl("expired", "1.3");
    assert.equal(expired.status, 0, expired.stderr);
    await line("DETECTED", "expired", "watch-untrusted", "curl");
    const wrong = curl("wrong", "1.2");
    assert.equal(wrong.status, 0, wrong.stderr);
    await line("DETECTED", "wrong", "watch-name", "curl");
    const good = curl("good", "1.2", ["--cacert", certs.root]);
    assert.equal(good.status, 0, good.stderr);
    await line("DETECTED", "good", "watch-expiry", "curl");
    const detected = (await relayEvents(lab, 9)).slice(5);
    assert.deepEqual(
      detected.map((e) => [
        e.type,
        e.rule,
        e.layer7?.tls?.certificate?.source,
        e.layer7?.tls?.certificate?.fingerprint,
        left(e),
      ]),
      [
        ["detected", "watch-pinned", "handshake", cert("self").fingerprint256, "spliced"],
        ["detected", "watch-untrusted", "probe", cert("expired").fingerprint256, "spliced"],
        ["detected", "watch-name", "handshake", cert("wrong").fingerprint256, "spliced"],
        ["detected", "watch-expiry", "handshake", cert("good").fingerprint256, "spliced"],
      ],
    );
  });
});

/** The relay's stored events, once there are `count` (all there are after 20 s, for the diff). */
async function relayEvents(
  lab: Parameters<typeof storedEvents>[0],
  count: number,
): Promise<EventJson[]> {
  const relayed = () => storedEvents(lab).filter((e) => e.hook === "l7_relay");
  return until(`${count} relay events`, () => {
    const all = relayed();
    return all.length >= count ? all : undefined;
  }).catch(() => relayed());
}

/** How the relay left a connection: "none" (not forwarded), else "spliced" by the kernel. */
function left(e: EventJson): string {
  return e.relay?.splice === "none" ? "none" : e.relay?.splice === "copy" ? "copy" : "spliced";
}

// moat's L7 relay as a user sees it: curl under the attached cgroup opens TLS connections to a
// real server (openssl s_server) in the peer namespace, and moat judges each by its SNI, before
// any byte reaches the server. An SNI counts only when the same program resolved that name to
// the address (names are not taken on trust) unless the rule says trust_sni; a refused SNI is
// reset in prevent and forwarded and reported in detect; a connection no L7 rule could decide
// (another port, or an earlier rule) never enters the relay.
//
// Run time: about 20 s on 2 cores (the daemon's start is most of it); keep it under 30 s.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cgroupForTest, startCgroupLab } from "../helpers/cgroup-lab.ts";
import { spawnLines } from "../helpers/child.ts";
import { startDnsPeers } from "../helpers/dns-lab.ts";
import { curl, curlByIp, type Where } from "../helpers/dns-clients.ts";
import type { MoatLab } from "../helpers/moat-lab.ts";
import type { Lab } from "../helpers/netns.ts";
import { MOAT } from "../helpers/paths.ts";

function policy(l: Lab & { auditPath: string }, cgroup: string): string {
  const deep = `${l.v4.a.replace(/\.1$/, "")}.22`;
  return `version: 1
mode: prevent
defaults: { ingress: allow, egress: allow }
attach: { interfaces: [${l.ifB}], cgroup: ${cgroup} }
rules:
  - { name: direct, direction: egress, action: allow, log: true, layer3: { remote: [${deep}] }, layer4: { protocol: tcp, port: [443] } }
  - { name: good-tls, direction: egress, action: allow, log: true, layer4: { port: [443] }, layer7: { tls: { sni: [allowed.moat.test] } } }
  - { name: trusted-tls, direction: egress, action: allow, log: true, layer4: { port: [443] }, layer7: { tls: { sni: [trusted.moat.test], trust_sni: true } } }
  - { name: watch-tls, direction: egress, action: block, mode: detect, layer4: { port: [443] }, layer7: { tls: { sni: [watched.moat.test], trust_sni: true } } }
  - { name: other-tls, direction: egress, action: block, layer4: { port: [443] }, layer7: { tls: {} } }
  - { name: plain, direction: egress, action: allow, log: true, layer4: { protocol: tcp, port: [8080] } }
`;
}

interface EventJson {
  type: string;
  rule?: string;
  hook?: string;
  remote?: { ip: string; port: number; names?: string[] };
  process?: { name: string } | null;
  layer7?: { tls?: { sni?: string } } | null;
  relay?: { splice: string };
}

function storedEvents(lab: MoatLab): EventJson[] {
  const r = spawnSync(
    MOAT,
    ["events", "--json", "--limit", "1000", "--api", `unix:${lab.apiSocket}`],
    { encoding: "utf8", timeout: 20_000 },
  );
  return r.stdout
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l) as EventJson);
}

async function until<T>(what: string, probe: () => T | undefined, ms = 8000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const value = probe();
    if (value !== undefined) return value;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** A TLS server in namespace a on every address, port 443, with a certificate made here. */
async function tlsServer(lab: Lab, dir: string) {
  const cert = join(dir, "cert.pem");
  const key = join(dir, "key.pem");
  const made = spawnSync("openssl", [
    "req",
    "-x509",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:P-256",
    "-nodes",
    "-days",
    "1",
    "-subj",
    "/CN=allowed.moat.test",
    "-keyout",
    key,
    "-out",
    cert,
  ]);
  assert.equal(made.status, 0, String(made.stderr));
  const server = spawnLines("ip", [
    "netns",
    "exec",
    lab.a,
    "openssl",
    "s_server",
    "-quiet",
    "-accept",
    "443",
    "-cert",
    cert,
    "-key",
    key,
    "-www",
  ]);
  // s_server says nothing when quiet: wait until it accepts
  await until("s_server listening", () => {
    const r = spawnSync("ip", ["netns", "exec", lab.a, "ss", "-Hltn", "sport = :443"], {
      encoding: "utf8",
    });
    return r.stdout.includes(":443") ? true : undefined;
  });
  return server;
}

test("L7 relay: TLS connections judged by SNI, names not taken on trust", async (t) => {
  const cg = cgroupForTest(t, "l7relay");
  const lab = await startCgroupLab(cg, "l7 relay", (l) => policy(l, cg.cgroup), ["tcp:8080"]);
  const dns = await startDnsPeers(lab);
  cg.onClose(() => dns.close());
  const dir = mkdtempSync(join(tmpdir(), "moat-l7-"));
  cg.onClose(() => rmSync(dir, { recursive: true, force: true }));
  const server = await tlsServer(lab, dir);
  cg.onClose(() => server.kill());
  const z = dns.zone;
  const fresh = (name: string): Where => {
    const d = join(cg.dir, name);
    mkdirSync(d);
    return { ns: lab.b, cgroupDir: d };
  };
  /** curl to https://NAME/ at the zone's allowed address without looking NAME up. */
  const unresolved = (where: Where, name: string) =>
    curl(where, dns.resolv.stub, `https://${name}/`, [
      "-k",
      "--connect-to",
      `${name}:443:${z.allowed}:443`,
    ]).status;
  const events = (pred: (e: EventJson) => boolean) =>
    until("the event", () => storedEvents(lab).find(pred));

  await t.test("an SNI this curl resolved to the address passes; the event names it", async () => {
    const r = curl(fresh("resolved"), dns.resolv.stub, "https://allowed.moat.test/", ["-k"]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /s_server/);
    const e = await events((e) => e.hook === "l7_relay" && e.rule === "good-tls");
    assert.equal(e.type, "allowed");
    assert.equal(e.layer7?.tls?.sni, "allowed.moat.test");
    assert.deepEqual(e.remote?.names, ["allowed.moat.test"]);
    assert.equal(e.process?.name, "curl");
    assert.equal(e.relay?.splice, "copy");
  });

  await t.test("the same SNI, not looked up by this curl, is reset before the server", async () => {
    const status = unresolved(fresh("unresolved"), "allowed.moat.test");
    // 35: the TLS handshake failed (the connection was reset)
    assert.equal(status, 35);
    const e = await events((e) => e.hook === "l7_relay" && e.rule === "other-tls");
    assert.equal(e.type, "blocked");
    assert.equal(e.layer7?.tls?.sni, "allowed.moat.test");
    assert.deepEqual(e.remote?.names, []);
  });

  await t.test("a looked-up name no rule allows is reset too", async () => {
    const r = curl(fresh("unlisted"), dns.resolv.stub, "https://unlisted.moat.test/", ["-k"]);
    assert.equal(r.status, 35, r.stderr);
    await events((e) => e.type === "blocked" && e.layer7?.tls?.sni === "unlisted.moat.test");
  });

  await t.test("trust_sni takes the name as sent; detect forwards and reports", async () => {
    assert.equal(unresolved(fresh("trusted"), "trusted.moat.test"), 0);
    await events((e) => e.rule === "trusted-tls" && e.type === "allowed");
    assert.equal(unresolved(fresh("watched"), "watched.moat.test"), 0);
    const e = await events((e) => e.rule === "watch-tls");
    assert.equal(e.type, "detected");
  });

  await t.test("connections no L7 rule decides never enter the relay", async () => {
    const deep = z.deep;
    const where = fresh("direct");
    assert.equal(curlByIp(where, `http://${z.allowed}:8080/`).status, 0);
    const plain = await events((e) => e.rule === "plain" && e.remote?.ip === z.allowed);
    assert.notEqual(plain.hook, "l7_relay");
    // an earlier rule (direct) decides port 443 to this address: the relay's redirect is skipped
    const r = curl(where, dns.resolv.stub, `https://allowed.moat.test/`, [
      "-k",
      "--connect-to",
      `allowed.moat.test:443:${deep}:443`,
    ]);
    assert.equal(r.status, 0, r.stderr);
    const direct = await events((e) => e.rule === "direct");
    assert.notEqual(direct.hook, "l7_relay");
    const relayed = storedEvents(lab).filter(
      (e) => e.hook === "l7_relay" && (e.remote?.ip === deep || e.remote?.port === 8080),
    );
    assert.deepEqual(relayed, []);
  });
});

// moat's L7 relay over IPv6, as a user sees it: curl, openssl s_client and ssh under the attached
// cgroup connect to the peer namespace's IPv6 address, and the relay judges each connection as it
// judges an IPv4 one: an allowed HTTP GET reaches the server and is reported by its rule, a POST
// gets moat's 403, a TLS ClientHello is judged by its SNI, an SSH server by its host key. Each
// event names the client and the server in the connection's family.
//
// Run time: about 25 s on an idle machine (the daemon's start is most of it).
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cgroupForTest, startCgroupLab } from "../helpers/cgroup-lab.ts";
import { runIn } from "../helpers/cgroup-run.ts";
import { spawnLines } from "../helpers/child.ts";
import { daemonSaid, storedEvents, tlsServer, until, type EventJson } from "../helpers/l7-lab.ts";
import type { Lab } from "../helpers/netns.ts";
import { makeKey, sshLoginArgs, startSshd, type KeyPair } from "../helpers/sshd.ts";

const HTTP_PORT = 2203;
const TLS_PORT = 2443;
const PINNED_PORT = 2210;
const OTHER_PORT = 2211;

function policy(l: Lab, cgroup: string, pinned: KeyPair): string {
  const ssh = `[${PINNED_PORT}, ${OTHER_PORT}]`;
  return `version: 1
mode: prevent
defaults: { ingress: allow, egress: allow }
attach: { interfaces: [${l.ifB}], cgroup: ${cgroup} }
rules:
  - { name: web-get, direction: egress, action: allow, log: true, layer4: { protocol: tcp, port: [${HTTP_PORT}] }, layer7: { http: { method: [GET] } } }
  - { name: other-http, direction: egress, action: block, layer4: { protocol: tcp, port: [${HTTP_PORT}] }, layer7: { http: {} } }
  - { name: good-tls, direction: egress, action: allow, log: true, layer4: { port: [${TLS_PORT}] }, layer7: { tls: { sni: [allowed.moat.test], trust_sni: true } } }
  - { name: other-tls, direction: egress, action: block, layer4: { port: [${TLS_PORT}] }, layer7: { tls: {} } }
  - { name: pinned-ssh, direction: egress, action: allow, log: true, layer4: { protocol: tcp, port: ${ssh} }, layer7: { ssh: { host_key: ["${pinned.fingerprint}"] } } }
  - { name: other-ssh, direction: egress, action: block, layer4: { protocol: tcp, port: ${ssh} }, layer7: { ssh: {} } }
`;
}

/** The stored event of `rule` whose remote port is `port` (the daemon's audit log). */
const eventOf = (lab: Parameters<typeof storedEvents>[0], rule: string, port: number) =>
  until(`an event of rule ${rule} to port ${port}`, () =>
    storedEvents(lab).find((e) => e.rule === rule && e.remote?.port === port),
  );

/** Both ends of the event are IPv6 addresses, the remote one the server's. */
function inIpv6(event: EventJson, server: string): void {
  const local = (event as EventJson & { local?: { ip: string } }).local;
  assert.equal(event.remote?.ip, server, JSON.stringify(event));
  assert.ok(local?.ip.includes(":"), `the client as IPv6: ${JSON.stringify(event)}`);
}

test("L7 relay over IPv6: HTTP, TLS and SSH judged as over IPv4", async (t) => {
  const cg = cgroupForTest(t, "l7v6");
  const dir = mkdtempSync(join(tmpdir(), "moat-l7v6-"));
  cg.onClose(() => rmSync(dir, { recursive: true, force: true }));
  const pinned = makeKey(dir, "host-pinned");
  const other = makeKey(dir, "host-other");
  const user = makeKey(dir, "user");
  const lab = await startCgroupLab(cg, "l7 ipv6", (l) => policy(l, cg.cgroup, pinned), []);
  const v6 = lab.v6.a;

  const www = join(dir, "www");
  spawnSync("mkdir", ["-p", www]);
  writeFileSync(join(www, "index.html"), "hello over ipv6\n");
  const http = spawnLines("ip", [
    "netns",
    "exec",
    lab.a,
    "python3",
    "-u",
    "-m",
    "http.server",
    String(HTTP_PORT),
    "--bind",
    v6,
    "--directory",
    www,
  ]);
  cg.onClose(() => http.kill());
  await http.waitFor(/Serving HTTP/);

  const inCgroup = (cmd: string[]) => runIn(lab.b, cg.dir, cmd);
  const curl = (extra: string[]) =>
    inCgroup([
      "curl",
      "-sS",
      "-g",
      "-o",
      "-",
      "-w",
      "\\n%{http_code}",
      ...extra,
      `http://[${v6}]:${HTTP_PORT}/`,
    ]);

  await t.test("an allowed GET reaches the server; its rule reports it", async () => {
    const r = curl([]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /hello over ipv6\n\n200$/);
    await daemonSaid(lab, /ALLOWED egress tcp .* HTTP GET \S*\/ by rule web-get \(curl pid/);
    inIpv6(await eventOf(lab, "web-get", HTTP_PORT), v6);
  });

  await t.test("a POST gets moat's 403 and is reported; the server never sees it", async () => {
    const r = curl(["-X", "POST", "--data", "x=1"]);
    assert.match(r.stdout, /^moat: blocked by rule other-http\n\n403$/);
    await daemonSaid(lab, /BLOCKED egress tcp .* HTTP POST \S*\/ by rule other-http/);
    inIpv6(await eventOf(lab, "other-http", HTTP_PORT), v6);
    assert.ok(!http.stderr.join("\n").includes("POST"), http.stderr.join("\n"));
  });

  const tls = await tlsServer(lab, dir, TLS_PORT, ["-6"]);
  cg.onClose(() => tls.kill());
  const sClient = (sni: string) =>
    inCgroup([
      "sh",
      "-c",
      'printf "GET / HTTP/1.0\\r\\n\\r\\n" | openssl s_client -quiet -connect "$1" -servername "$2"',
      "sh",
      `[${v6}]:${TLS_PORT}`,
      sni,
    ]);

  await t.test("TLS: the allowed SNI completes the handshake; another is reset", async () => {
    const ok = sClient("allowed.moat.test");
    assert.match(ok.stdout, /s_server/, ok.stderr);
    await daemonSaid(lab, /ALLOWED egress tcp .* TLS allowed\.moat\.test by rule good-tls/);
    inIpv6(await eventOf(lab, "good-tls", TLS_PORT), v6);
    const refused = sClient("other.moat.test");
    assert.doesNotMatch(refused.stdout, /s_server/);
    await daemonSaid(lab, /BLOCKED egress tcp .* TLS other\.moat\.test by rule other-tls/);
    inIpv6(await eventOf(lab, "other-tls", TLS_PORT), v6);
  });

  const authorized = join(dir, "authorized_keys");
  writeFileSync(authorized, `${user.pub}\n`);
  for (const [port, hostKey] of [
    [PINNED_PORT, pinned],
    [OTHER_PORT, other],
  ] as const) {
    const sshd = await startSshd({
      dir,
      port,
      hostKeys: [hostKey],
      address: `[${v6}]`,
      netns: lab.a,
      config: [`AuthorizedKeysFile ${authorized}`],
    });
    cg.onClose(() => sshd.close());
  }
  const ssh = (port: number) =>
    inCgroup(["ssh", ...sshLoginArgs(user.path, v6, port, "echo pinned-ok")]);

  await t.test("SSH: ssh logs in to the pinned server; the other is reset", async () => {
    const ok = ssh(PINNED_PORT);
    assert.equal(ok.stdout.trim(), "pinned-ok", ok.stderr);
    await daemonSaid(lab, /ALLOWED egress tcp .* SSH SSH-2\.0-OpenSSH.* by rule pinned-ssh/);
    inIpv6(await eventOf(lab, "pinned-ssh", PINNED_PORT), v6);
    const refused = ssh(OTHER_PORT);
    assert.notEqual(refused.status, 0);
    assert.doesNotMatch(refused.stdout, /pinned-ok/);
    await daemonSaid(lab, /BLOCKED egress tcp .* by rule other-ssh/);
    inIpv6(await eventOf(lab, "other-ssh", OTHER_PORT), v6);
  });
});

// moat's L7 relay under `defaults.egress: block`: the relay's own connections to the servers
// (and its TLS 1.3 certificate probes) pass moat's hooks as the relay decided, because the addon
// makes each upstream socket with its kernel record already carrying the decision. Everything
// else still meets the default: a blocked SNI is reset, and a process outside attach.cgroup
// cannot reach the same server. The kernel does not report the relay's connections again.
//
// Run time: about 20 s on an idle machine (the daemon's start is most of it); keep it under 30 s.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cgroupForTest, startCgroupLab } from "../helpers/cgroup-lab.ts";
import { startDnsPeers } from "../helpers/dns-lab.ts";
import { spawnLines } from "../helpers/child.ts";
import { curl, type Where } from "../helpers/dns-clients.ts";
import type { Lab } from "../helpers/netns.ts";
import { storedEvents, tlsServer, until } from "../helpers/l7-lab.ts";
import { reloadPolicy } from "../helpers/policy-reload.ts";

/** A TLS client that opens, says so, and sends a request only when told (a line on stdin). */
const KEPT_CLIENT = `
import socket, ssl, sys
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
s = ctx.wrap_socket(socket.create_connection((sys.argv[1], 443), timeout=3), server_hostname="kept.moat.test")
print("open", flush=True)
sys.stdin.readline()
try:
    s.sendall(b"GET / HTTP/1.0\\r\\n\\r\\n")
    data = b""
    while True:
        c = s.recv(65536)
        if not c:
            break
        data += c
    print("page" if b"s_server" in data else "no page", flush=True)
except OSError as e:
    print("failed", e, flush=True)
`;

function policy(l: Lab & { auditPath: string }, cgroup: string): string {
  return `version: 1
mode: prevent
defaults: { ingress: allow, egress: block }
attach: { interfaces: [${l.ifB}], cgroup: ${cgroup} }
rules:
  - { name: dns, direction: egress, action: allow, layer4: { protocol: udp, port: [53] } }
  - { name: good-tls, direction: egress, action: allow, log: true, layer4: { port: [443] }, layer7: { tls: { sni: [allowed.moat.test] } } }
  - { name: cert-tls, direction: egress, action: allow, log: true, layer4: { port: [443] }, layer7: { tls: { sni: [probed.moat.test], trust_sni: true, certificate: { subject_cn: allowed.moat.test } } } }
  - { name: kept-tls, direction: egress, action: allow, layer4: { port: [443] }, layer7: { tls: { sni: [kept.moat.test], trust_sni: true } } }
  - { name: other-tls, direction: egress, action: block, layer4: { port: [443] }, layer7: { tls: {} } }
`;
}

test("L7 relay under egress block: upstreams pass as decided, nothing else", async (t) => {
  const cg = cgroupForTest(t, "l7up");
  const lab = await startCgroupLab(cg, "l7 upstream", (l) => policy(l, cg.cgroup), []);
  const dns = await startDnsPeers(lab);
  cg.onClose(() => dns.close());
  const dir = mkdtempSync(join(tmpdir(), "moat-l7up-"));
  cg.onClose(() => rmSync(dir, { recursive: true, force: true }));
  const server = await tlsServer(lab, dir);
  cg.onClose(() => server.kill());
  const z = dns.zone;
  const fresh = (name: string): Where => {
    const d = join(cg.dir, name);
    mkdirSync(d);
    return { ns: lab.b, cgroupDir: d };
  };
  const line = (type: string, sni: string, rule: string) =>
    lab.daemon.waitFor(
      new RegExp(
        `${type} egress tcp .* TLS ${sni.replaceAll(".", "\\.")} by rule ${rule} \\(curl pid`,
      ),
    );

  await t.test("an allowed, resolved SNI gets its page through the relay", async () => {
    const r = curl(fresh("resolved"), dns.resolv.stub, "https://allowed.moat.test/", ["-k"]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /s_server/);
    await line("ALLOWED", "allowed.moat.test", "good-tls");
  });

  await t.test("a blocked SNI is reset", async () => {
    const r = curl(fresh("unlisted"), dns.resolv.stub, "https://unlisted.moat.test/", ["-k"]);
    assert.equal(r.status, 35, r.stderr);
    await line("BLOCKED", "unlisted.moat.test", "other-tls");
  });

  await t.test("a TLS 1.3 certificate rule: moat's probe passes too", async () => {
    const r = curl(fresh("probed"), dns.resolv.stub, "https://probed.moat.test/", [
      "-k",
      "--tlsv1.3",
      "--connect-to",
      `probed.moat.test:443:${z.allowed}:443`,
    ]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /s_server/);
    await line("ALLOWED", "probed.moat.test", "cert-tls");
  });

  await t.test("a reload leaves the relay's open connections as it decided", async () => {
    const d = join(cg.dir, "kept");
    mkdirSync(d);
    const client = spawnLines("nsenter", [
      `--net=/run/netns/${lab.b}`,
      "sh",
      "-c",
      `echo $$ > ${d}/cgroup.procs && exec python3 -c "$0" "$1"`,
      KEPT_CLIENT,
      z.allowed,
    ]);
    cg.onClose(() => client.kill("SIGKILL"));
    await client.waitFor(/^open$/);
    await reloadPolicy(
      lab,
      `${policy(lab, cg.cgroup)}  - { name: extra, direction: egress, action: allow, layer4: { protocol: tcp, port: [9] } }\n`,
    );
    client.send("");
    assert.equal(await client.waitFor(/^(page|no page|failed)/), "page");
  });

  await t.test("a process outside attach.cgroup still meets the default", async () => {
    const outside: Where = { ns: lab.b, cgroupDir: null };
    const r = curl(outside, dns.resolv.stub, "https://allowed.moat.test/", ["-k"]);
    assert.notEqual(r.status, 0, "reached the server from outside the cgroup");
    await lab.daemon.waitFor(
      new RegExp(
        `BLOCKED egress tcp \\S+ -> ${z.allowed.replaceAll(".", "\\.")}:443 .*by rule default`,
      ),
    );
  });

  await t.test(
    "the relay reported each decision once; the kernel none of its upstreams",
    async () => {
      const all = await until("the relay's three events in the history", () => {
        const stored = storedEvents(lab);
        return stored.filter((e) => e.hook === "l7_relay").length >= 3 ? stored : undefined;
      });
      const relayed = all.filter((e) => e.hook === "l7_relay");
      assert.deepEqual(
        relayed.map((e) => [e.type, e.rule, e.layer7?.tls?.sni]),
        [
          ["allowed", "good-tls", "allowed.moat.test"],
          ["blocked", "other-tls", "unlisted.moat.test"],
          ["allowed", "cert-tls", "probed.moat.test"],
        ],
      );
      const kernel = all.filter(
        (e) => e.hook !== "l7_relay" && e.type !== "closed" && e.remote?.port === 443,
      );
      assert.deepEqual(
        kernel.map((e) => [e.type, e.rule]),
        [["blocked", "default"]],
      );
    },
  );
});

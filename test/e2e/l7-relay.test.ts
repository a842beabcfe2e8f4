// moat's L7 relay as a user sees it: curl under the attached cgroup opens TLS connections to a
// real server (openssl s_server) in the peer namespace, and moat judges each by its SNI, before
// any byte reaches the server. An SNI counts only when the same program resolved that name to
// the address (names are not taken on trust) unless the rule says trust_sni; a refused SNI is
// reset in prevent and forwarded and reported in detect; a connection no L7 rule could decide
// (another port, or an earlier rule) never enters the relay.
//
// Run time: about 20 s on an idle machine (the daemon's start is most of it); keep it under 30 s.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cgroupForTest, startCgroupLab } from "../helpers/cgroup-lab.ts";
import { startDnsPeers } from "../helpers/dns-lab.ts";
import { curl, curlByIp, type Where } from "../helpers/dns-clients.ts";
import type { Lab } from "../helpers/netns.ts";
import { storedEvents, tlsServer, until } from "../helpers/l7-lab.ts";
import { spawnLines } from "../helpers/child.ts";
import { reloadPolicy } from "../helpers/policy-reload.ts";

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
  /** The daemon's line of an event (its stdout sink): cheap to wait for. */
  const line = (type: string, sni: string, rule: string) =>
    lab.daemon.waitFor(
      new RegExp(
        `${type} egress tcp .* TLS ${sni.replaceAll(".", "\\.")} by rule ${rule} \\(curl pid`,
      ),
    );

  await t.test("an SNI this curl resolved to the address passes", async () => {
    const r = curl(fresh("resolved"), dns.resolv.stub, "https://allowed.moat.test/", ["-k"]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /s_server/);
    await line("ALLOWED", "allowed.moat.test", "good-tls");
  });

  await t.test("the same SNI, not looked up by this curl, is reset before the server", async () => {
    // 35: the TLS handshake failed (the connection was reset)
    assert.equal(unresolved(fresh("unresolved"), "allowed.moat.test"), 35);
    await line("BLOCKED", "allowed.moat.test", "other-tls");
  });

  await t.test("a looked-up name no rule allows is reset too", async () => {
    const r = curl(fresh("unlisted"), dns.resolv.stub, "https://unlisted.moat.test/", ["-k"]);
    assert.equal(r.status, 35, r.stderr);
    await line("BLOCKED", "unlisted.moat.test", "other-tls");
  });

  await t.test("trust_sni takes the name as sent; detect forwards and reports", async () => {
    assert.equal(unresolved(fresh("trusted"), "trusted.moat.test"), 0);
    await line("ALLOWED", "trusted.moat.test", "trusted-tls");
    assert.equal(unresolved(fresh("watched"), "watched.moat.test"), 0);
    await line("DETECTED", "watched.moat.test", "watch-tls");
  });

  await t.test("connections no L7 rule decides never enter the relay", async () => {
    const where = fresh("direct");
    assert.equal(curlByIp(where, `http://${z.allowed}:8080/`).status, 0);
    await lab.daemon.waitFor(/ALLOWED egress tcp .*:8080 .*by rule plain \(curl pid/);
    // an earlier rule (direct) decides port 443 to this address: the relay's redirect is skipped
    const r = curl(where, dns.resolv.stub, `https://allowed.moat.test/`, [
      "-k",
      "--connect-to",
      `allowed.moat.test:443:${z.deep}:443`,
    ]);
    assert.equal(r.status, 0, r.stderr);
    await lab.daemon.waitFor(/ALLOWED egress tcp .*:443 .*by rule direct \(curl pid/);
  });

  await t.test("the stored events: hook, names, process, layer7, how the relay left", async () => {
    const all = await until("the relay's five events in the history", () => {
      const stored = storedEvents(lab);
      return stored.filter((e) => e.hook === "l7_relay").length >= 5 ? stored : undefined;
    });
    const relayed = all.filter((e) => e.hook === "l7_relay");
    const brief = relayed.map((e) => [e.type, e.rule, e.layer7?.tls?.sni, e.remote?.names]);
    assert.deepEqual(brief, [
      ["allowed", "good-tls", "allowed.moat.test", ["allowed.moat.test"]],
      ["blocked", "other-tls", "allowed.moat.test", []],
      ["blocked", "other-tls", "unlisted.moat.test", ["unlisted.moat.test"]],
      ["allowed", "trusted-tls", "trusted.moat.test", []],
      ["detected", "watch-tls", "watched.moat.test", []],
    ]);
    // an allowed connection leaves the relay through the kernel: a sockmap, or splice(2) when a
    // side's FIN came before the splice (the kernel takes only established sockets into a
    // sockmap; a short exchange can finish first); a blocked one was never spliced
    const kernel = (splice: string | undefined) =>
      splice === "sockmap" || splice === "splice" ? "kernel" : splice;
    assert.deepEqual(
      relayed.map((e) => [e.process?.name, kernel(e.relay?.splice)]),
      [
        ["curl", "kernel"],
        ["curl", "none"],
        ["curl", "none"],
        ["curl", "kernel"],
        ["curl", "kernel"],
      ],
    );
    // the kernel decided these: none of them was the relay's
    for (const rule of ["plain", "direct"])
      assert.ok(
        all.some((e) => e.rule === rule && e.hook !== "l7_relay"),
        `the kernel's event of rule ${rule}`,
      );
  });

  await t.test("a reload that no longer lets a spliced connection through resets it", async () => {
    const held = spawnLines("nsenter", [
      `--net=/run/netns/${lab.b}`,
      "sh",
      "-c",
      `echo $$ > ${fresh("held").cgroupDir}/cgroup.procs && exec "$@"`,
      "sh",
      "openssl",
      "s_client",
      "-brief",
      "-connect",
      `${z.allowed}:443`,
      "-servername",
      "trusted.moat.test",
    ]);
    cg.onClose(() => held.kill());
    await until("the TLS handshake through the relay", () =>
      held.stderr.some((l) => l.includes("CONNECTION ESTABLISHED")) ? true : undefined,
    );
    await lab.daemon.waitFor(/ALLOWED egress tcp .* TLS trusted\.moat\.test by rule trusted-tls/);
    const without = policy(lab, cg.cgroup)
      .split("\n")
      .filter((l) => !l.includes("name: trusted-tls"))
      .join("\n");
    await reloadPolicy(lab, without);
    const code = await Promise.race([
      held.exited,
      new Promise((r) => setTimeout(() => r("still connected"), 15_000)),
    ]);
    assert.notEqual(code, "still connected", held.stderr.join("\n"));
    const cut = await until("the re-judged connection's event", () =>
      storedEvents(lab).find((e) => e.hook === "l7_relay" && e.reason === "rejudged"),
    );
    assert.deepEqual(
      [cut.type, cut.rule, cut.layer7?.tls?.sni, cut.relay?.splice],
      ["blocked", "other-tls", "trusted.moat.test", "sockmap"],
    );
  });
});

// The accept side (docs/socket-hooks.md, "The accept side"): connections a remote peer opens to
// servers in attach.cgroup. Every event of such a connection (its opening, its close) names the
// server's process: pid, name, executable, user, cgroup; so does a UDP flow's, and so does one to
// a server that was listening before moat started (its owner is read from sock_diag).
import { test } from "node:test";
import assert from "node:assert/strict";
import { realpathSync } from "node:fs";
import { startMoatLab } from "../helpers/moat-lab.ts";
import { testCgroup } from "../helpers/cgroup-run.ts";
import { peerConnect, serveIn, type Server } from "../helpers/accept-lab.ts";
import { http } from "../helpers/api-client.ts";
import type { MoatEvent } from "../../src/datapath/events.ts";

// Debian's python3 (the one on PATH may be a pyenv shim script)
const PYTHON = realpathSync("/usr/bin/python3");

test("accepted connections name the local server's process", async (t) => {
  const { cgroup, dir, remove } = testCgroup("accept");
  const servers: Server[] = [];
  let closeLab = async () => {};
  t.after(async () => {
    for (const s of servers) await s.stop();
    await closeLab();
    remove();
  });
  const lab = await startMoatLab(
    "accept side",
    (l) => `version: 1
mode: prevent
defaults: { ingress: allow, egress: allow }
attach: { interfaces: [${l.ifB}], cgroup: ${cgroup} }
logging: { audit: { path: ${l.auditPath} } }
rules:
  - { name: app-in, direction: ingress, action: allow, log: true, layer4: { protocol: tcp, port: [7001, 7002] } }
  - { name: watch-udp, direction: ingress, action: block, mode: detect, layer4: { protocol: udp, port: [7003] } }
  - { name: other-tcp, direction: ingress, action: allow, log: true, layer4: { protocol: tcp } }
`,
    [],
    // a server listening before moat starts: post_bind never saw it
    {
      beforeDaemon: async (l) =>
        void servers.push(await serveIn(l.b, dir, ["tcp:7002"], { exe: "/usr/bin/python3" })),
    },
  );
  closeLab = () => lab.close();
  const early = servers[0]!;
  const server = await serveIn(lab.b, dir, ["tcp:7001", "udp:7003"], { exe: "/usr/bin/python3" });
  servers.push(server);

  /** The event history's events matching `pick`, waiting for them to be stored. */
  const eventsWhere = async (pick: (e: MoatEvent) => boolean): Promise<MoatEvent[]> => {
    for (let i = 0; i < 40; i++) {
      const reply = await http({ socketPath: lab.apiSocket }, "GET", "/v1/events?limit=200");
      const found = (JSON.parse(reply.body) as { events: MoatEvent[] }).events.filter(pick);
      if (found.length > 0) return found;
      await new Promise((r) => setTimeout(r, 100));
    }
    return [];
  };

  await t.test("an accepted TCP connection's events carry the server's process", async () => {
    assert.equal(peerConnect(lab.a, "tcp", lab.v4.b, 7001), "python3 7001");
    await lab.daemon.waitFor(
      new RegExp(
        `ALLOWED ingress tcp ${lab.v4.a}:\\d+ -> ${lab.v4.b}:7001 .*by rule app-in \\(python3 pid ${server.pid}\\)$`,
      ),
    );
    await lab.daemon.waitFor(
      new RegExp(
        `CLOSED ingress tcp .* -> ${lab.v4.b}:7001 .*\\(python3 pid ${server.pid}\\) \\(fin`,
      ),
    );
    const [opened] = await eventsWhere((e) => e.local.port === 7001 && e.type === "allowed");
    assert.equal(opened?.hook, "accept");
    assert.deepEqual(opened?.process, {
      pid: server.pid,
      name: "python3",
      path: PYTHON,
      user: 0,
      userName: "root",
      cgroup,
      container: null,
    });
    const [closed] = await eventsWhere((e) => e.local.port === 7001 && e.type === "closed");
    assert.equal(closed?.process?.pid, server.pid);
    assert.equal(closed?.connection, opened?.connection);
  });

  await t.test("over IPv6 too", async () => {
    assert.equal(peerConnect(lab.a, "tcp", lab.v6.b, 7001), "python3 7001");
    await lab.daemon.waitFor(
      new RegExp(
        `ALLOWED ingress tcp \\[${lab.v6.a}\\]:\\d+ -> \\[${lab.v6.b}\\]:7001 .*\\(python3 pid ${server.pid}\\)`,
      ),
    );
  });

  await t.test("a UDP flow to a local socket is attributed (detect mode)", async () => {
    assert.equal(peerConnect(lab.a, "udp", lab.v4.b, 7003), "ping");
    await lab.daemon.waitFor(
      new RegExp(
        `DETECTED ingress udp .* -> ${lab.v4.b}:7003 .*by rule watch-udp \\(python3 pid ${server.pid}\\)`,
      ),
    );
  });

  await t.test("a server listening before moat started is found through sock_diag", async () => {
    assert.ok(
      lab.daemon.lines.some((l) => /^accept hook: owners of [1-9]\d* sockets bound before/.test(l)),
    );
    assert.equal(peerConnect(lab.a, "tcp", lab.v4.b, 7002), "python3 7002");
    await lab.daemon.waitFor(
      new RegExp(
        `ALLOWED ingress tcp .* -> ${lab.v4.b}:7002 .*by rule app-in \\(python3 pid ${early.pid}\\)`,
      ),
    );
    const [opened] = await eventsWhere((e) => e.local.port === 7002 && e.type === "allowed");
    assert.equal(opened?.process?.cgroup, cgroup);
    assert.equal(opened?.process?.path, PYTHON);
  });

  await t.test(
    "a connection to a port nobody listens on is still reported, without a process",
    async () => {
      // no socket, no accept hook: the reset the stack answers with settles it at the tc hook
      assert.equal(peerConnect(lab.a, "tcp", lab.v4.b, 7009), "refused");
      const line = await lab.daemon.waitFor(
        /ALLOWED ingress tcp .* -> [\d.]+:7009 .*by rule other-tcp/,
      );
      assert.doesNotMatch(line, /pid/);
      const [opened] = await eventsWhere((e) => e.local.port === 7009 && e.type === "allowed");
      assert.equal(opened?.hook, "tc");
      assert.equal(opened?.process, null);
    },
  );
});

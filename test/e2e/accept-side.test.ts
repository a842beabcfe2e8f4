// The accept side (docs/socket-hooks.md, "The accept side"): connections a remote peer opens to
// servers in attach.cgroup. Every event of such a connection (its opening, its close) names the
// server's process: pid, name, executable, user, cgroup; so does a UDP flow's, and so does one to
// a server that was listening before moat started (its owner is read from sock_diag). Ingress
// process rules are judged there too: the same peer is let in to one server and not another.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { copyFileSync, mkdtempSync, realpathSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startMoatLab } from "../helpers/moat-lab.ts";
import { testCgroup } from "../helpers/cgroup-run.ts";
import { peerConnect, serveIn, type Server } from "../helpers/accept-lab.ts";
import { http } from "../helpers/api-client.ts";
import type { MoatEvent } from "../../src/datapath/event.ts";

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

test("ingress process rules: the accept hook judges a connection by its listener's owner", async (t) => {
  const { cgroup, dir, remove } = testCgroup("accept-rules");
  // two executables of their own (comm = file name): copies of Debian's python3
  const bin = mkdtempSync(join(tmpdir(), "moat-accept-"));
  for (const p of ["alpha", "beta", "gamma"]) copyFileSync("/usr/bin/python3", join(bin, p));
  execFileSync("chmod", ["755", bin, ...["alpha", "beta", "gamma"].map((p) => join(bin, p))]);
  const servers: Server[] = [];
  let closeLab = async () => {};
  t.after(async () => {
    for (const s of servers) await s.stop();
    await closeLab();
    remove();
    rmSync(bin, { recursive: true, force: true });
  });
  const lab = await startMoatLab(
    "accept rules",
    (l) => `version: 1
mode: prevent
defaults: { ingress: block, egress: allow }
attach: { interfaces: [${l.ifB}], cgroup: ${cgroup} }
logging: { audit: { path: ${l.auditPath} } }
rules:
  - { name: neighbours, direction: any, action: allow, layer4: { protocol: icmpv6 } }
  - { name: alpha-in, direction: ingress, action: allow, log: true, layer4: { protocol: tcp, port: [7101, 7103] }, process: { path: ${bin}/alpha } }
  - { name: not-nobody, direction: ingress, action: block, layer4: { protocol: tcp, port: [7102, 7104] }, process: { user: [nobody] } }
  - { name: watch-gamma, direction: ingress, action: block, mode: detect, layer4: { protocol: tcp }, process: { name: [gamma] } }
  - { name: web-in, direction: ingress, action: allow, layer4: { protocol: tcp, port: [7102, 7104] } }
`,
    [],
  );
  closeLab = () => lab.close();
  const start = async (specs: string[], options: { exe?: string; as?: string[] }) => {
    const s = await serveIn(lab.b, dir, specs, options);
    servers.push(s);
    return s;
  };
  const alpha = await start(["tcp:7101"], { exe: join(bin, "alpha") });
  const beta = await start(["tcp:7103"], { exe: join(bin, "beta") });
  await start(["tcp:7102"], { exe: "/usr/bin/python3" });
  const nobody = await start(["tcp:7104"], {
    exe: "/usr/bin/python3",
    as: ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"],
  });
  const gamma = await start(["tcp:7105"], { exe: join(bin, "gamma") });

  /** What the peer sees. */
  const connect = (port: number, host = lab.v4.b) => ({
    seen: peerConnect(lab.a, "tcp", host, port, 1),
  });

  await t.test("alpha's listener is open to the peer, by executable path", async () => {
    assert.equal(connect(7101).seen, "alpha 7101");
    await lab.daemon.waitFor(
      new RegExp(
        `ALLOWED ingress tcp .* -> ${lab.v4.b}:7101 .*by rule alpha-in \\(alpha pid ${alpha.pid}\\)`,
      ),
    );
  });

  await t.test("beta's is closed to the same peer: the SYN is dropped, and reported", async () => {
    const r = connect(7103);
    assert.equal(r.seen, "timeout");
    await lab.daemon.waitFor(
      new RegExp(
        `BLOCKED ingress tcp .* -> ${lab.v4.b}:7103 .*by rule default \\(beta pid ${beta.pid}\\)`,
      ),
    );
    // a blocked connection stays blocked: its SYN sent again (after 1 s) is dropped too
    assert.equal(peerConnect(lab.a, "tcp", lab.v4.b, 7103, 2.5), "timeout");
  });

  await t.test("a listener of user nobody is closed, root's on the same rule is open", async () => {
    assert.equal(connect(7102).seen, "python3 7102");
    assert.equal(connect(7104).seen, "timeout");
    await lab.daemon.waitFor(
      new RegExp(
        `BLOCKED ingress tcp .* -> ${lab.v4.b}:7104 .*by rule not-nobody \\(python3 pid ${nobody.pid}\\)`,
      ),
    );
  });

  await t.test("over IPv6 too", async () => {
    assert.equal(connect(7101, lab.v6.b).seen, "alpha 7101");
    assert.equal(connect(7103, lab.v6.b).seen, "timeout");
  });

  await t.test(
    "detect mode lets the connection through and reports it with its process",
    async () => {
      assert.equal(connect(7105).seen, "gamma 7105");
      await lab.daemon.waitFor(
        new RegExp(
          `DETECTED ingress tcp .* -> ${lab.v4.b}:7105 .*by rule watch-gamma \\(gamma pid ${gamma.pid}\\)`,
        ),
      );
    },
  );

  await t.test(
    "no listener: XDP's verdict stands (the default blocks), settled at the tc hook",
    async () => {
      assert.equal(connect(7199).seen, "timeout");
      const line = await lab.daemon.waitFor(
        /BLOCKED ingress tcp .* -> [\d.]+:7199 .*by rule default/,
      );
      assert.doesNotMatch(line, /pid/);
    },
  );
});

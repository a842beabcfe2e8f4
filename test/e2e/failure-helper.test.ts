// When a redirect's target is not listening (moat's relay, a local proxy that stopped), the kernel
// finds it out at connect() and does what the policy says: `failure.helper` (block by default,
// or allow: the connection goes where it was going) or the redirect's own `on_unavailable`.
import { test } from "node:test";
import assert from "node:assert/strict";
import { cgroupForTest, startCgroupLab } from "../helpers/cgroup-lab.ts";
import { runIn, udpSend } from "../helpers/cgroup-run.ts";
import { spawnLines } from "../helpers/child.ts";
import { NODE, ROOT } from "../helpers/paths.ts";
import type { Lab } from "../helpers/netns.ts";

const PORT = { down: 18101, downAllow: 18102, downBlock: 18103, udp: 18104 } as const;

function policy(l: Lab & { auditPath: string }, cgroup: string, failure: string): string {
  return `version: 1
mode: prevent
defaults: { ingress: allow, egress: allow }
attach: { interfaces: [${l.ifB}], cgroup: ${cgroup} }
logging: { audit: { path: ${l.auditPath} } }
${failure}
redirect:
  - name: to-down
    match: { direction: egress, layer3: { remote: [${l.v4.a}] }, layer4: { protocol: tcp, port: [80] } }
    to: 127.0.0.1:${PORT.down}
  - name: to-down-allow
    match: { direction: egress, layer3: { remote: [${l.v4.a}] }, layer4: { protocol: tcp, port: [443] } }
    to: 127.0.0.1:${PORT.downAllow}
    on_unavailable: allow
  - name: to-down-block
    match: { direction: egress, layer3: { remote: [${l.v4.a}] }, layer4: { protocol: tcp, port: [9443] } }
    to: 127.0.0.1:${PORT.downBlock}
    on_unavailable: block
  - name: udp-down
    match: { direction: egress, layer3: { remote: [${l.v4.a}] }, layer4: { protocol: udp, port: [5353] } }
    to: 127.0.0.1:${PORT.udp}
`;
}

test("a redirect whose target is not listening: blocked or let through, as the policy says", async (t) => {
  const cg = cgroupForTest(t, "failhelp");
  const { cgroup, dir } = cg;
  const lab = await startCgroupLab(cg, "failure-helper", (l) => policy(l, cgroup, ""), [
    "tcp:80,443",
  ]);
  const a = lab.v4.a.replaceAll(".", "\\.");
  /** connect() from the attached cgroup: "ok <first line>" or the error's errno name. */
  const connect = (port: number) => {
    const r = runIn(lab.b, dir, [
      "python3",
      "-c",
      `import socket, errno\ntry:\n  s = socket.create_connection(("${lab.v4.a}", ${port}), timeout=5)\n  s.sendall(b"GET / HTTP/1.0\\r\\n\\r\\n")\n  print("ok", s.recv(4096).decode().split("\\r\\n\\r\\n")[-1].strip())\nexcept OSError as e:\n  print(errno.errorcode.get(e.errno, e))`,
    ]);
    assert.equal(r.status, 0, r.stderr);
    return r.stdout.trim();
  };

  await t.test(
    "default (failure.helper: block): connect() fails with EPERM, reported",
    async () => {
      assert.equal(connect(80), "EPERM");
      await lab.daemon.waitFor(
        new RegExp(
          `BLOCKED egress tcp .* -> ${a}:80 by rule default .*redirect to-down: 127\\.0\\.0\\.1:${PORT.down} is unavailable`,
        ),
      );
    },
  );

  await t.test("UDP: sendto() a redirect whose target has no socket fails with EPERM", () => {
    const r = runIn(lab.b, dir, udpSend(lab.v4.a, 5353));
    assert.equal(r.stdout.trim(), "EPERM", r.stderr);
  });

  await t.test("on_unavailable: allow: the connection goes where it was going", async () => {
    assert.equal(connect(443), "ok port 443");
    await lab.daemon.waitFor(
      new RegExp(`ALLOWED egress tcp .* -> ${a}:443 .*redirect to-down-allow: .* is unavailable`),
    );
  });

  await t.test("once the target listens, connections are redirected to it again", async () => {
    const proxy = spawnLines("nsenter", [
      `--net=/run/netns/${lab.b}`,
      NODE,
      "--disable-warning=ExperimentalWarning",
      `${ROOT}test/helpers/redirect-proxy.ts`,
      "lookup",
      String(PORT.down),
      lab.apiSocket,
    ]);
    cg.onClose(() => proxy.kill());
    await proxy.waitFor(/^listening$/);
    assert.match(connect(80), /^ok \{.*"redirect":"to-down"/);
    proxy.kill();
    await proxy.exited;
    assert.equal(connect(80), "EPERM", "stopped again: blocked again");
  });

  await t.test(
    "failure.helper: allow lets them through, unless a redirect says block",
    async () => {
      lab.writePolicy(policy({ ...lab }, cgroup, "failure: { helper: allow }"));
      await lab.daemon.waitFor(/applied: generation 2/);
      assert.equal(connect(80), "ok port 80");
      assert.equal(connect(9443), "EPERM", "a redirect's own on_unavailable: block still blocks");
    },
  );
});

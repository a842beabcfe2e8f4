// moat's L7 relay judging HTTP requests and SSH servers, end to end: curl and ssh-keyscan under
// the attached cgroup reach a real HTTP server (python's http.server) and two real sshds in the
// peer namespace; the kernel sends their connections to the relay, which judges each request
// by method and path and each SSH server by its host key, and answers a refusal as a user sees
// it: HTTP 403 from moat, an SSH connection reset before the key exchange ends.
//
// Run time: about 20 s on an idle machine (the daemon's start is most of it).
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cgroupForTest, startCgroupLab } from "../helpers/cgroup-lab.ts";
import { runIn } from "../helpers/cgroup-run.ts";
import { spawnLines } from "../helpers/child.ts";
import type { Lab } from "../helpers/netns.ts";
import { makeKey, startSshd, type KeyPair } from "../helpers/sshd.ts";

const PINNED_PORT = 2201;
const OTHER_PORT = 2202;

function policy(l: Lab, cgroup: string, pinned: KeyPair): string {
  return `version: 1
mode: prevent
defaults: { ingress: allow, egress: allow }
attach: { interfaces: [${l.ifB}], cgroup: ${cgroup} }
rules:
  - name: reads
    direction: egress
    action: allow
    log: true
    layer3: { remote: [${l.v4.a}] }
    layer4: { protocol: tcp, port: [80] }
    layer7: { http: { host: [files.moat.test], trust_host: true, method: [GET, HEAD], path: ["/pub/*"] } }
  - { name: other-http, direction: egress, action: block, layer4: { protocol: tcp, port: [80] }, layer7: { http: {} } }
  - name: pinned-ssh
    direction: egress
    action: allow
    log: true
    layer4: { protocol: tcp, port: [${PINNED_PORT}, ${OTHER_PORT}] }
    layer7: { ssh: { host_key: ["${pinned.fingerprint}"] } }
  - { name: other-ssh, direction: egress, action: block, layer4: { protocol: tcp, port: [${PINNED_PORT}, ${OTHER_PORT}] }, layer7: { ssh: {} } }
`;
}

test("L7 relay: HTTP requests by method and path, SSH servers by host key", async (t) => {
  const cg = cgroupForTest(t, "l7proto");
  const dir = mkdtempSync(join(tmpdir(), "moat-l7p-"));
  cg.onClose(() => rmSync(dir, { recursive: true, force: true }));
  const pinned = makeKey(dir, "host-pinned");
  const other = makeKey(dir, "host-other");
  const lab = await startCgroupLab(cg, "l7 protocols", (l) => policy(l, cg.cgroup, pinned), []);
  const www = join(dir, "www");
  spawnSync("mkdir", ["-p", join(www, "pub")]);
  writeFileSync(join(www, "pub", "hello.txt"), "hello from the server\n");
  writeFileSync(join(www, "secret.txt"), "not for you\n");
  const http = spawnLines("ip", [
    "netns",
    "exec",
    lab.a,
    "python3",
    "-u",
    "-m",
    "http.server",
    "80",
    "--bind",
    lab.v4.a,
    "--directory",
    www,
  ]);
  cg.onClose(() => http.kill());
  await http.waitFor(/Serving HTTP/);
  for (const [port, key] of [
    [PINNED_PORT, pinned],
    [OTHER_PORT, other],
  ] as const) {
    const sshd = await startSshd({ dir, port, hostKeys: [key], address: lab.v4.a, netns: lab.a });
    cg.onClose(() => sshd.close());
  }
  const inCgroup = (cmd: string[]) => runIn(lab.b, cg.dir, cmd);
  const curl = (extra: string[], path: string) =>
    inCgroup([
      "curl",
      "-sS",
      "-o",
      "-",
      "-w",
      "\\n%{http_code}",
      "-H",
      "Host: files.moat.test",
      ...extra,
      `http://${lab.v4.a}${path}`,
    ]);

  await t.test("an allowed GET gets the server's page; its event names the request", async () => {
    const r = curl([], "/pub/hello.txt");
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /hello from the server\n\n200$/);
    await lab.daemon.waitFor(
      /ALLOWED egress tcp .* HTTP GET \S+\/pub\/hello\.txt by rule reads \(curl pid/,
    );
  });

  await t.test("another path or method gets moat's 403; the server never sees it", async () => {
    const path = curl([], "/secret.txt");
    assert.match(path.stdout, /^moat: blocked by rule other-http\n\n403$/);
    const post = curl(["-X", "POST", "--data", "x=1"], "/pub/hello.txt");
    assert.match(post.stdout, /^moat: blocked by rule other-http\n\n403$/);
    await lab.daemon.waitFor(
      /BLOCKED egress tcp .* HTTP POST \S+\/pub\/hello\.txt by rule other-http/,
    );
    assert.ok(!http.stderr.join("\n").includes("secret.txt"), http.stderr.join("\n"));
    assert.ok(!http.stderr.join("\n").includes("POST"), http.stderr.join("\n"));
  });

  const keyscan = (port: number) =>
    inCgroup(["ssh-keyscan", "-T", "5", "-t", "ed25519", "-p", String(port), lab.v4.a]);

  await t.test("the pinned SSH server's key exchange completes; the other is reset", async () => {
    const ok = keyscan(PINNED_PORT);
    assert.ok(ok.stdout.includes(pinned.pub.split(" ")[1]!), `${ok.stdout}\n${ok.stderr}`);
    await lab.daemon.waitFor(
      /ALLOWED egress tcp .*:2201 SSH SSH-2\.0-OpenSSH.* by rule pinned-ssh/,
    );
    const refused = keyscan(OTHER_PORT);
    assert.equal(refused.stdout.trim(), "", "no host key reached the client");
    await lab.daemon.waitFor(/BLOCKED egress tcp .*:2202 .* by rule other-ssh/);
  });
});

// Redirects seen by real clients (docs/redirect.md): connections the rules let through and a
// redirect matches reach a proxy instead; the proxy learns the original destination from moat's
// API or from the PROXY v2 header of moat's relay; the client's getpeername() and recvfrom() still
// show the original destination; a proxy's own connections are never redirected; a target the
// clients cannot reach is refused at load.
import { test } from "node:test";
import assert from "node:assert/strict";
import { cgroupForTest, startCgroupLab } from "../helpers/cgroup-lab.ts";
import { runIn } from "../helpers/cgroup-run.ts";
import { spawnLines } from "../helpers/child.ts";
import { NODE, ROOT } from "../helpers/paths.ts";

const PROXY = { lookup: 18001, v2: 18002, forward: 18003, udp: 18004 } as const;

test("redirects send connections to a proxy that learns where they were going", async (t) => {
  const cg = cgroupForTest(t, "redirect");
  const { cgroup, dir } = cg;
  const lab = await startCgroupLab(
    cg,
    "redirect",
    (l) => `version: 1
mode: prevent
defaults: { ingress: allow, egress: allow }
attach: { interfaces: [${l.ifB}], cgroup: ${cgroup} }
logging: { audit: { path: ${l.auditPath} } }
rules:
  - { name: no-9000, direction: egress, action: block, layer4: { protocol: tcp, port: [9000] } }
redirect:
  - name: to-lookup
    match: { direction: egress, layer3: { remote: [${l.v4.a}] }, layer4: { protocol: tcp, port: [80, 9000] } }
    to: 127.0.0.1:${PROXY.lookup}
  - name: to-v2
    match: { direction: egress, layer3: { remote: [${l.v4.a}] }, layer4: { protocol: tcp, port: [8080] } }
    to: 127.0.0.1:${PROXY.v2}
    proxy_protocol: v2
  - name: to-forward
    match: { direction: egress, layer3: { remote: [${l.v4.a}] }, layer4: { protocol: tcp, port: [443] } }
    to: 127.0.0.1:${PROXY.forward}
  - name: v6-to-v4
    match: { direction: egress, layer3: { remote: ["${l.v6.a}"] }, layer4: { protocol: tcp, port: [80] } }
    to: 127.0.0.1:${PROXY.lookup}
  - name: dns-udp
    match: { direction: egress, layer3: { remote: [${l.v4.a}] }, layer4: { protocol: udp, port: [5353] } }
    to: 127.0.0.1:${PROXY.udp}
`,
    ["tcp:22,80,443,8080,9000", "udp:5353"],
  );

  // the proxies live on moat's host (namespace b); the forwarding one inside the attached cgroup
  const proxy = async (mode: string, port: number, inCgroup = false) => {
    const enter = inCgroup ? `echo $$ > ${dir}/cgroup.procs && ` : "";
    const child = spawnLines("nsenter", [
      `--net=/run/netns/${lab.b}`,
      "sh",
      "-c",
      `${enter}exec "$@"`,
      "sh",
      NODE,
      "--disable-warning=ExperimentalWarning",
      `${ROOT}test/helpers/redirect-proxy.ts`,
      mode,
      String(port),
      lab.apiSocket,
    ]);
    cg.onClose(() => child.kill());
    await child.waitFor(/^listening$/);
  };
  await proxy("lookup", PROXY.lookup);
  await proxy("v2", PROXY.v2);
  await proxy("forward", PROXY.forward, true);
  await proxy("udp", PROXY.udp);

  const run = (cmd: string[], inCgroup = true) => runIn(lab.b, inCgroup ? dir : null, cmd);
  const curl = (port: number, inCgroup = true) =>
    run(["curl", "-sS", "--max-time", "5", `http://${lab.v4.a}:${port}/`], inCgroup);
  const a = lab.v4.a.replaceAll(".", "\\.");

  await t.test("the proxy gets the connection and looks its original destination up", async () => {
    const r = curl(80);
    assert.equal(r.status, 0, r.stderr);
    const found = JSON.parse(r.stdout) as Record<string, unknown>;
    assert.deepEqual(found.original, { ip: lab.v4.a, port: 80 });
    assert.equal(found.redirect, "to-lookup");
    assert.equal(found.protocol, "tcp");
    assert.deepEqual(found.target, { ip: "127.0.0.1", port: PROXY.lookup });
    assert.equal((found.process as { name: string }).name, "curl");
    const said = new RegExp(
      `ALLOWED egress tcp .* -> ${a}:80 .*\\(curl pid \\d+\\), redirected to 127\\.0\\.0\\.1:${PROXY.lookup} by redirect to-lookup`,
    );
    await lab.daemon.waitFor(said);
    await lab.auditHas(said);
  });

  await t.test("getpeername() still shows the original destination", () => {
    const r = run([
      "python3",
      "-c",
      `import socket\ns = socket.create_connection(("${lab.v4.a}", 80), timeout=5)\nprint(s.getpeername())\ns.sendall(b"GET / HTTP/1.0\\r\\n\\r\\n")\nprint(s.recv(4096).decode().split("\\r\\n\\r\\n")[1])`,
    ]);
    assert.equal(r.status, 0, r.stderr);
    const [peerName, body] = r.stdout.split("\n");
    assert.equal(peerName, `('${lab.v4.a}', 80)`);
    assert.match(body ?? "", /"redirect":"to-lookup"/);
  });

  await t.test("IPv6: a v6 socket is sent to an IPv4 target and still sees its v6 peer", () => {
    const r = run([
      "python3",
      "-c",
      `import socket\ns = socket.create_connection(("${lab.v6.a}", 80), timeout=5)\nprint(s.getpeername()[:2])\ns.sendall(b"GET / HTTP/1.0\\r\\n\\r\\n")\nprint(s.recv(4096).decode().split("\\r\\n\\r\\n")[1])`,
    ]);
    assert.equal(r.status, 0, r.stderr);
    const [peerName, body] = r.stdout.split("\n");
    assert.equal(peerName, `('${lab.v6.a}', 80)`);
    const found = JSON.parse(body ?? "") as { original: unknown; redirect: string };
    assert.deepEqual(found.original, { ip: lab.v6.a, port: 80 });
    assert.equal(found.redirect, "v6-to-v4");
  });

  await t.test("with proxy_protocol v2, moat's relay sends a PROXY v2 header first", () => {
    const r = curl(8080);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout.trim(), new RegExp(`^v2 src=127\\.0\\.0\\.1:\\d+ dst=${a}:8080$`));
  });

  await t.test("a proxy's own connections are never redirected: no loop", async () => {
    // the forwarding proxy runs in the attached cgroup and connects to the very destination the
    // redirect matches: it reaches the real server, not itself
    const r = curl(443);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.trim(), "forwarded: port 443");
    await lab.daemon.waitFor(/by redirect to-forward/);
  });

  await t.test("rules come first: a blocked connection is not redirected", () => {
    // -v prints connect()'s errno: refused by the rule, not a redirect that went nowhere
    const r = run(["curl", "-sSv", "--max-time", "5", `http://${lab.v4.a}:9000/`], true);
    assert.equal(r.status, 7, r.stderr);
    assert.match(r.stderr, /Operation not permitted/);
  });

  await t.test("a connection no redirect matches goes where it was going", () => {
    // one rule, five redirects: the redirects' "none" must not be read as one of them
    const r = curl(22);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, "port 22\n");
  });

  await t.test("outside the attached cgroup nothing is redirected", () => {
    const r = curl(80, false);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, "port 80\n");
  });

  await t.test("UDP: sendto() is redirected and recvfrom() shows the original sender", () => {
    const r = run([
      "python3",
      "-c",
      `import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\ns.settimeout(5)\ns.sendto(b"q", ("${lab.v4.a}", 5353))\ndata, addr = s.recvfrom(4096)\nprint(addr)\nprint(data.decode())`,
    ]);
    assert.equal(r.status, 0, r.stderr);
    const [from, body] = r.stdout.split("\n");
    assert.equal(from, `('${lab.v4.a}', 5353)`);
    assert.match(
      body ?? "",
      new RegExp(`^udp .*"original":\\{"ip":"${a}","port":5353\\}.*"redirect":"dns-udp"`),
    );
  });

  await t.test("after kill -9 and a restart, redirects and moat's relay still work", async () => {
    const daemon = await lab.restart("SIGKILL");
    assert.match(daemon.lines.join("\n"), /adopted pinned maps: .*redirects/);
    const relayed = curl(8080);
    assert.equal(relayed.status, 0, relayed.stderr);
    assert.match(relayed.stdout.trim(), new RegExp(`^v2 src=127\\.0\\.0\\.1:\\d+ dst=${a}:8080$`));
    const looked = curl(80);
    assert.equal(looked.status, 0, looked.stderr);
    assert.equal((JSON.parse(looked.stdout) as { redirect: string }).redirect, "to-lookup");
  });

  await t.test(
    "a target the clients cannot reach is refused at load; the policy stays",
    async () => {
      lab.writePolicy(`version: 1
mode: prevent
defaults: { ingress: allow, egress: allow }
attach: { interfaces: [${lab.ifB}], cgroup: ${cgroup} }
redirect:
  - name: nowhere
    match: { direction: egress, layer4: { protocol: tcp, port: [80] } }
    to: 198.18.7.7:3128
`);
      const line = await lab.daemon.waitFor(
        /redirect 'nowhere': 198\.18\.7\.7:3128 is not reachable/,
      );
      assert.match(line, /policy\.yaml:6:5 redirect\[0\]: /);
      assert.match(line, /Network is unreachable/);
      // the running policy still redirects
      const r = curl(80);
      assert.match(r.stdout, /"redirect":"to-lookup"/);
    },
  );
});

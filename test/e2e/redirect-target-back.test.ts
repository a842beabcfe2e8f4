// A UDP redirect whose target stops and comes back while a client's unconnected socket keeps
// sending (docs/redirect.md, "Is it there?"): while the target is down each sendto() gets what
// the redirect's failure setting says, reported once for the socket; once it is back, the next
// sendto() goes to it again.
import { test } from "node:test";
import assert from "node:assert/strict";
import { cgroupForTest, startCgroupLab, type CgroupForTest } from "../helpers/cgroup-lab.ts";
import { spawnLines, type LineChild } from "../helpers/child.ts";
import type { MoatLab } from "../helpers/moat-lab.ts";
import type { Lab } from "../helpers/netns.ts";
import { NODE, ROOT } from "../helpers/paths.ts";

const PORT = 18113;

function policy(
  l: Lab & { auditPath: string },
  cgroup: string,
  mode: string,
  extra: string,
): string {
  return `version: 1
mode: ${mode}
defaults: { ingress: allow, egress: allow }
attach: { interfaces: [${l.ifB}], cgroup: ${cgroup} }
logging: { audit: { path: ${l.auditPath} } }
redirect:
  - name: udp-proxy
    match: { direction: egress, layer3: { remote: [${l.v4.a}] }, layer4: { protocol: udp, port: [5353] } }
    to: 127.0.0.1:${PORT}
    ${extra}
`;
}

/**
 * One unconnected UDP socket: each line on stdin sends a datagram with sendto() and prints who
 * answered ("proxy": the redirect's target, "peer": the server it was sent to) or the errno name.
 */
const CLIENT = `
import errno, os, socket, sys
host, port = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(3)
print("pid", os.getpid(), flush=True)
for _ in sys.stdin:
    try:
        s.sendto(b"q", (host, port))
        data, _ = s.recvfrom(4096)
        print("proxy" if data.startswith(b"udp ") else "peer", flush=True)
    except socket.timeout:
        print("no answer", flush=True)
    except OSError as e:
        print(errno.errorcode.get(e.errno, str(e.errno)), flush=True)
`;

test("a UDP redirect's target stops, then comes back, between sendto() of one socket", async (t) => {
  const cg = cgroupForTest(t, "redirback");
  const lab = await startCgroupLab(
    cg,
    "redirect-target-back",
    (l) => policy(l, cg.cgroup, "detect", ""),
    ["udp:5353"],
  );
  const a = lab.v4.a.replaceAll(".", "\\.");

  await t.test("detect: the target is back: the next sendto() goes to it", async () => {
    const proxy = await startProxy(cg, lab);
    const client = await startClient(cg, lab);
    assert.equal(await send(client), "proxy");
    await stopProxy(proxy);
    assert.equal(await send(client), "peer");
    assert.equal(await send(client), "peer");
    const again = await startProxy(cg, lab);
    try {
      assert.equal(await send(client), "proxy", "the target is back: redirected again");
    } finally {
      await stopProxy(again);
      client.child.kill();
    }
  });

  await t.test(
    "prevent, on_unavailable allow: the target is back: the next sendto() goes to it",
    async () => {
      lab.writePolicy(policy(lab, cg.cgroup, "prevent", "on_unavailable: allow"));
      await lab.daemon.waitFor(/applied: generation \d+, \d+ rules, mode prevent/);
      const proxy = await startProxy(cg, lab);
      const client = await startClient(cg, lab);
      assert.equal(await send(client), "proxy");
      await stopProxy(proxy);
      assert.equal(await send(client), "peer");
      assert.equal(await send(client), "peer");
      const again = await startProxy(cg, lab);
      try {
        assert.equal(await send(client), "proxy", "the target is back: redirected again");
      } finally {
        await stopProxy(again);
        client.child.kill();
      }
    },
  );

  await t.test(
    "prevent, block: refused while down, reported once; redirected once back",
    async () => {
      lab.writePolicy(policy(lab, cg.cgroup, "prevent", ""));
      await lab.daemon.waitFor(/applied: generation \d+, \d+ rules, mode prevent/);
      const proxy = await startProxy(cg, lab);
      const client = await startClient(cg, lab);
      const redirected = new RegExp(
        `ALLOWED egress udp \\S+ -> ${a}:5353 .*\\(python3 pid ${client.pid}\\), redirected to 127\\.0\\.0\\.1:${PORT} by redirect udp-proxy`,
      );
      assert.equal(await send(client), "proxy");
      await lab.daemon.waitFor(redirected);
      await stopProxy(proxy);
      assert.equal(await send(client), "EPERM");
      assert.equal(await send(client), "EPERM");
      assert.equal(await send(client), "EPERM");
      const again = await startProxy(cg, lab);
      try {
        assert.equal(await send(client), "proxy", "the target is back: redirected again");
        // the events come in order: the outage's are all in before the redirect that ends it
        await lab.daemon.waitFor(redirected);
        const unavailable = new RegExp(
          `BLOCKED egress udp \\S+ -> ${a}:5353 by rule default \\(python3 pid ${client.pid}\\), redirect udp-proxy: 127\\.0\\.0\\.1:${PORT} is unavailable`,
        );
        assert.equal(
          lab.daemon.lines.filter((l) => unavailable.test(l)).length,
          1,
          "the outage is reported once for the socket",
        );
      } finally {
        await stopProxy(again);
        client.child.kill();
      }
    },
  );
});

/** The UDP proxy on moat's host (namespace b, outside the attached cgroup), once it listens. */
async function startProxy(cg: CgroupForTest, lab: MoatLab): Promise<LineChild> {
  const proxy = spawnLines("nsenter", [
    `--net=/run/netns/${lab.b}`,
    NODE,
    "--disable-warning=ExperimentalWarning",
    `${ROOT}test/helpers/redirect-proxy.ts`,
    "udp",
    String(PORT),
    lab.apiSocket,
  ]);
  cg.onClose(() => proxy.kill());
  await proxy.waitFor(/^listening$/);
  return proxy;
}

async function stopProxy(proxy: LineChild): Promise<void> {
  proxy.kill();
  await proxy.exited;
}

interface Client {
  child: LineChild;
  pid: string;
}

/** CLIENT in the attached cgroup, sending to namespace a's UDP server. */
async function startClient(cg: CgroupForTest, lab: MoatLab): Promise<Client> {
  const child = spawnLines("nsenter", [
    `--net=/run/netns/${lab.b}`,
    "sh",
    "-c",
    `echo $$ > ${cg.dir}/cgroup.procs && exec "$@"`,
    "sh",
    "python3",
    "-c",
    CLIENT,
    lab.v4.a,
    "5353",
  ]);
  cg.onClose(() => child.kill());
  const pid = (await child.waitFor(/^pid \d+$/)).slice(4);
  return { child, pid };
}

/** One sendto() of the client: what it printed. */
function send(client: Client): Promise<string> {
  client.child.send("send");
  return client.child.waitFor(/^(proxy|peer|no answer|E[A-Z]+)$/);
}

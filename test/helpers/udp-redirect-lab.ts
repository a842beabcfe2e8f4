// A UDP redirect lab (docs/redirect.md): moat's policy redirecting a cgroup's datagrams to
// namespace a's port 5353 to a proxy on moat's host; the proxy, stopped and started again; one
// client socket in the cgroup that sends on demand and says who answered.
import type { TestContext } from "node:test";
import { cgroupForTest, spawnInCgroup, startCgroupLab, type CgroupForTest } from "./cgroup-lab.ts";
import { spawnLines, type LineChild } from "./child.ts";
import type { MoatLab } from "./moat-lab.ts";
import type { Lab } from "./netns.ts";
import { reloadPolicy } from "./policy-reload.ts";
import { NODE, ROOT } from "./paths.ts";

/** The policy: a cgroup's UDP to a:5353 redirected to 127.0.0.1:`port`; `extra` goes in the
 * redirect (e.g. `on_unavailable: allow`). */
export function udpRedirectPolicy(
  l: Lab & { auditPath: string },
  cgroup: string,
  mode: string,
  port: number,
  extra = "",
): string {
  return `version: 1
mode: ${mode}
defaults: { ingress: allow, egress: allow }
attach: { interfaces: [${l.ifB}], cgroup: ${cgroup} }
logging: { audit: { path: ${l.auditPath} } }
redirect:
  - name: udp-proxy
    match: { direction: egress, layer3: { remote: [${l.v4.a}] }, layer4: { protocol: udp, port: [5353] } }
    to: 127.0.0.1:${port}
    ${extra}
`;
}

export interface UdpRedirectLab {
  lab: MoatLab;
  /** The redirect's target on `port`, once it listens. */
  startProxy(): Promise<LineChild>;
  /** A client socket in the test's cgroup. */
  startClient(): Promise<Client>;
  /** The policy in `mode` (`extra` as udpRedirectPolicy's), once the daemon enforces it. */
  reload(mode: string, extra?: string): Promise<void>;
}

/** The lab in detect mode, redirecting to 127.0.0.1:`port`, with a UDP server on a's 5353. */
export async function startUdpRedirectLab(
  t: TestContext,
  kind: string,
  name: string,
  port: number,
): Promise<UdpRedirectLab> {
  const cg = cgroupForTest(t, kind);
  const lab = await startCgroupLab(
    cg,
    name,
    (l) => udpRedirectPolicy(l, cg.cgroup, "detect", port),
    ["udp:5353"],
  );
  return {
    lab,
    startProxy: () => startProxy(cg, lab, port),
    startClient: () => startClient(cg, lab),
    reload: async (mode, extra) => {
      await reloadPolicy(lab, udpRedirectPolicy(lab, cg.cgroup, mode, port, extra));
    },
  };
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

/** The UDP proxy on moat's host (namespace b, outside the attached cgroup), once it listens. */
export async function startProxy(
  cg: CgroupForTest,
  lab: MoatLab,
  port: number,
): Promise<LineChild> {
  const proxy = spawnLines("nsenter", [
    `--net=/run/netns/${lab.b}`,
    NODE,
    "--disable-warning=ExperimentalWarning",
    `${ROOT}test/helpers/redirect-proxy.ts`,
    "udp",
    String(port),
    lab.apiSocket,
  ]);
  cg.onClose(() => proxy.kill());
  await proxy.waitFor(/^listening$/);
  return proxy;
}

export async function stopProxy(proxy: LineChild): Promise<void> {
  proxy.kill();
  await proxy.exited;
}

export interface Client {
  child: LineChild;
  pid: string;
}

/** CLIENT in the attached cgroup, sending to namespace a's UDP server. */
export async function startClient(cg: CgroupForTest, lab: MoatLab): Promise<Client> {
  const child = spawnInCgroup(cg, lab, ["python3", "-c", CLIENT, lab.v4.a, "5353"]);
  const pid = (await child.waitFor(/^pid \d+$/)).slice(4);
  return { child, pid };
}

/** One sendto() of the client: what it printed. */
export function send(client: Client): Promise<string> {
  client.child.send("send");
  return client.child.waitFor(/^(proxy|peer|no answer|E[A-Z]+)$/);
}

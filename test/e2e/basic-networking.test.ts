// Basic networking never breaks: under a policy that blocks everything but tcp/22, in prevent
// mode, neighbour discovery still resolves both ends over IPv6 after their caches are flushed (so
// nc reaches port 22 while other ports and echo requests stay blocked), and a DHCP client behind
// moat still gets a lease from a real server on the peer, and a DHCPv6 client socket in the
// attached cgroup is not judged by the socket hooks either.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { join } from "node:path";
import { spawnLines } from "../helpers/child.ts";
import { cgroupForTest, startCgroupLab } from "../helpers/cgroup-lab.ts";
import { runIn } from "../helpers/cgroup-run.ts";
import { startMoatLab } from "../helpers/moat-lab.ts";
import type { Lab } from "../helpers/netns.ts";
import { guardedInterface } from "../helpers/ingress-mode.ts";

function policy(lab: Lab & { auditPath: string }, cgroup?: string): string {
  return `version: 1
mode: prevent
defaults: { ingress: block, egress: block }
attach: { interfaces: [${guardedInterface(lab.ifB)}]${cgroup ? `, cgroup: ${cgroup}` : ""} }
logging: { audit: { path: ${lab.auditPath} } }
rules:
  - name: ssh
    direction: ingress
    action: allow
    layer4: { protocol: tcp, port: [22] }
`;
}

/** nc -z from a: 0 when the port answered. */
const probe = (lab: Lab, addr: string, port: number) =>
  lab.inA("nc", ["-z", "-w", "3", addr, String(port)], 15_000);

/** The neighbour entry's state for `addr` in a namespace ("REACHABLE", "FAILED", ... or ""). */
function neighbour(ns: string, addr: string): string {
  const r = spawnSync("ip", ["-n", ns, "-6", "neigh", "show", addr], { encoding: "utf8" });
  return /\s([A-Z]+)\s*$/.exec(r.stdout.trim())?.[1] ?? "";
}

test("IPv6 under block-everything-but-ssh: neighbour discovery passes, ssh works, the rest is blocked", async (t) => {
  const lab = await startMoatLab(t.name, policy);
  try {
    for (const ns of [lab.a, lab.b])
      assert.equal(spawnSync("ip", ["-n", ns, "-6", "neigh", "flush", "all"]).status, 0);
    assert.equal(probe(lab, lab.v6.b, 22), 0, "nc over IPv6 to port 22 connects");
    assert.match(neighbour(lab.a, lab.v6.b), /REACHABLE|STALE|DELAY|PROBE/, "a resolved b");
    assert.match(neighbour(lab.b, lab.v6.a), /REACHABLE|STALE|DELAY|PROBE/, "b resolved a");

    assert.notEqual(probe(lab, lab.v6.b, 80), 0, "port 80 is blocked");
    const ping = lab.inA("ping", ["-6", "-c", "1", "-w", "2", lab.v6.b]);
    assert.notEqual(ping, 0, "echo requests are judged: blocked by the default");
    const scan = lab.scan([22, 80, 443], lab.v6.b);
    assert.deepEqual(Object.fromEntries(scan), { 22: "open", 80: "filtered", 443: "filtered" });

    // flushed again: b's own solicitation for a (egress) and a's answer (ingress) pass too
    for (const ns of [lab.a, lab.b]) spawnSync("ip", ["-n", ns, "-6", "neigh", "flush", "all"]);
    assert.equal(probe(lab, lab.v6.b, 22), 0, "again after a second flush");

    await lab.daemon.waitFor(/BLOCKED ingress tcp .*:80 on /);
    assert.doesNotMatch(lab.audit(), /icmpv6 type 13[3-7]/, "no discovery message was judged");
  } finally {
    await lab.close();
  }
});

test("a DHCP client behind moat gets its lease under block-everything", async (t) => {
  const lab = await startMoatLab(t.name, policy);
  const prefix = lab.v4.a.replace(/\.1$/, "");
  const server = spawn(
    "ip",
    [
      ...["netns", "exec", lab.a, "dnsmasq", "--no-daemon", "--port=0", "--bind-interfaces"],
      `--interface=${lab.ifA}`,
      `--dhcp-range=${prefix}.100,${prefix}.150,2m`,
      `--dhcp-leasefile=${join(lab.dir, "leases")}`,
      "--pid-file=",
    ],
    { stdio: "ignore" },
  );
  try {
    await new Promise((r) => setTimeout(r, 500));
    const r = spawnSync(
      "ip",
      [
        ...["netns", "exec", lab.b, "busybox", "udhcpc", "-i", lab.ifB],
        ...["-n", "-q", "-f", "-t", "4", "-T", "1", "-s", "/bin/true"],
      ],
      { encoding: "utf8", timeout: 30_000 },
    );
    assert.equal(r.status, 0, `udhcpc got no lease:\n${r.stderr}`);
    assert.match(
      r.stderr,
      new RegExp(`lease of ${prefix.replaceAll(".", "\\.")}\\.1\\d\\d obtained`),
    );
  } finally {
    server.kill();
    await lab.close();
  }
});

/** A DHCPv6 server's port in namespace a: answers each datagram to 547 from where it came. */
const DHCP6_RESPONDER = `import socket
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.bind(("::", 547))
print("ready", flush=True)
while True:
    data, peer = s.recvfrom(2048)
    s.sendto(b"advertise", peer)`;

/** A DHCPv6 client's exchange from port 546: prints the answer, or the error. */
const dhcp6Client = (server: string): string[] => [
  "/usr/bin/python3",
  "-c",
  `import socket
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.bind(("::", 546))
s.settimeout(3)
try:
    s.sendto(b"solicit", ("${server}", 547))
    print(s.recvfrom(2048)[0].decode())
except OSError as e:
    print(type(e).__name__)`,
];

test("a DHCPv6 client's socket in the attached cgroup is not judged either", async (t) => {
  const cg = cgroupForTest(t, "dhcp6");
  const lab = await startCgroupLab(cg, t.name, (l) => policy(l, cg.cgroup), []);
  const responder = spawnLines("ip", [
    ...["netns", "exec", lab.a, "/usr/bin/python3", "-c", DHCP6_RESPONDER],
  ]);
  cg.onClose(() => responder.kill());
  await responder.waitFor(/^ready$/);
  const r = runIn(lab.b, cg.dir, dhcp6Client(lab.v6.a));
  assert.equal(r.stdout, "advertise\n", r.stderr);
  // the same exchange from another port is judged: egress is blocked at sendto()
  const other = runIn(lab.b, cg.dir, [
    "/usr/bin/python3",
    "-c",
    `import socket
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
try:
    s.sendto(b"solicit", ("${lab.v6.a}", 547))
    print("sent")
except PermissionError:
    print("EPERM")`,
  ]);
  assert.equal(other.stdout, "EPERM\n", other.stderr);
});

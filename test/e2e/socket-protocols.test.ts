// Every protocol a policy can name is judged for the processes of the attached cgroup, not only
// TCP and UDP: a UDP-Lite socket's sendto() and connect() get EPERM from the socket hooks like
// UDP's, and a raw socket (which never reaches connect/sendmsg hooks) has its packets judged at the
// packet hook with its owner, so process rules apply to it too.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnLines } from "../helpers/child.ts";
import { cgroupForTest, startCgroupLab } from "../helpers/cgroup-lab.ts";
import { runIn } from "../helpers/cgroup-run.ts";

const PY = "/usr/bin/python3";

/** UDP-Lite: one datagram by sendto() and one after connect(); prints each outcome. */
const udpLite = (host: string, port: number): string[] => [
  PY,
  "-c",
  `import socket
for how in ("sendto", "connect"):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDPLITE)
    try:
        if how == "sendto":
            s.sendto(b"q", ("${host}", ${port}))
        else:
            s.connect(("${host}", ${port}))
            s.send(b"q")
        print(how, "sent")
    except PermissionError:
        print(how, "EPERM")`,
];

/**
 * A raw IPv4 socket sends one hand-made SYN from `sport` to port 9999 carrying `tag`: a TCP one,
 * or one of another protocol (`proto`) given the whole IP packet (IP_HDRINCL).
 */
const rawSyn = (
  src: string,
  dst: string,
  sport: number,
  tag: string,
  proto = "IPPROTO_TCP",
): string[] => [
  PY,
  "-c",
  `import socket, struct
def csum(b):
    if len(b) % 2: b += b"\\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16: s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff
payload = b"${tag}"
tcp = struct.pack("!HHIIBBHHH", ${sport}, 9999, 1, 0, 5 << 4, 0x02, 1024, 0, 0) + payload
pseudo = socket.inet_aton("${src}") + socket.inet_aton("${dst}") + struct.pack("!BBH", 0, 6, len(tcp))
tcp = tcp[:16] + struct.pack("!H", csum(pseudo + tcp)) + tcp[18:]
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.${proto})
if socket.${proto} != socket.IPPROTO_TCP:
    s.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)
    tcp = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 0, 0, 64, 6, 0, socket.inet_aton("${src}"), socket.inet_aton("${dst}")) + tcp
s.sendto(tcp, ("${dst}", 0))
print("sent")`,
];

/** In namespace a: prints the payload of each TCP packet to port 9999 it sees. */
const RAW_RECEIVER = `import socket, struct
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
print("ready", flush=True)
while True:
    data = s.recv(2048)
    if struct.unpack("!H", data[22:24])[0] == 9999:
        print(data[40:].decode(errors="replace"), flush=True)`;

test("UDP-Lite and raw sockets are judged like TCP and UDP", async (t) => {
  const cg = cgroupForTest(t, "proto");
  const lab = await startCgroupLab(
    cg,
    "socket protocols",
    (l) => `version: 1
mode: prevent
defaults: { ingress: allow, egress: allow }
attach: { interfaces: [${l.ifB}], cgroup: ${cg.cgroup} }
logging: { audit: { path: ${l.auditPath} } }
rules:
  - { name: no-udplite, direction: egress, action: block, layer4: { protocol: 136 } }
  - name: no-9999-from-python
    direction: egress
    action: block
    process: { path: "/usr/bin/python3*" }
    layer4: { protocol: tcp, port: [9999] }
`,
    [],
  );

  await t.test(
    "UDP-Lite: sendto() fails with EPERM; a connected socket's datagram is dropped",
    async () => {
      const r = runIn(lab.b, cg.dir, udpLite(lab.v4.a, 9000));
      // the kernel runs no connect hook for UDP-Lite: the connected send is judged at tc
      assert.equal(r.stdout, "sendto EPERM\nconnect sent\n", r.stderr);
      await lab.daemon.waitFor(/BLOCKED egress .* -> .*by rule no-udplite \(python3\S* pid \d+\)/);
      await lab.daemon.waitFor(
        /BLOCKED egress .* on \S+ by rule no-udplite \(python3\S* pid \d+\)/,
      );
    },
  );

  await t.test("a raw socket's packets are judged with their process", async () => {
    const peer = spawnLines("ip", ["netns", "exec", lab.a, PY, "-c", RAW_RECEIVER]);
    cg.onClose(() => peer.kill());
    await peer.waitFor(/^ready$/);
    const inside = runIn(lab.b, cg.dir, rawSyn(lab.v4.b, lab.v4.a, 40001, "from the cgroup"));
    assert.equal(inside.stdout, "sent\n", inside.stderr);
    await lab.daemon.waitFor(
      /BLOCKED egress tcp .*:9999 on \S+ by rule no-9999-from-python \(python3\S* pid \d+\)/,
    );
    // a raw socket of another protocol sending TCP is its process's all the same
    const udpRaw = runIn(
      lab.b,
      cg.dir,
      rawSyn(lab.v4.b, lab.v4.a, 40003, "from udp", "IPPROTO_UDP"),
    );
    assert.equal(udpRaw.stdout, "sent\n", udpRaw.stderr);
    await lab.daemon.waitFor(
      /BLOCKED egress tcp \S+:40003 -> .*:9999 on \S+ by rule no-9999-from-python \(python3\S* pid \d+\)/,
    );
    // outside the cgroup no process is known: the process rule does not match, the packet passes
    const outside = runIn(lab.b, null, rawSyn(lab.v4.b, lab.v4.a, 40002, "from outside"));
    assert.equal(outside.stdout, "sent\n", outside.stderr);
    await peer.waitFor(/^from outside$/);
    assert.deepEqual(
      peer.lines.filter((l) => l.startsWith("from")),
      ["from outside"],
      "only the packet sent from outside the cgroup arrived",
    );
  });
});

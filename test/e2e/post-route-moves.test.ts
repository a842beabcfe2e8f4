// The post-route check on sockets that change interface after their first packet
// (docs/route-aware.md): an unprivileged process sends by the route the mirror predicted, then
// moves its socket to evil0, which a rule forbids (IP_PKTINFO on each datagram, SO_BINDTODEVICE
// on a connected tcp or udp socket). Nothing of theirs may leave by evil0: every packet of an
// armed socket is checked against the interface it was judged for.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { cgroupForTest, startCgroupLab } from "../helpers/cgroup-lab.ts";
import { asNobody, runIn } from "../helpers/cgroup-run.ts";

const EVIL_B = "10.66.0.1";
const EVIL_A = "10.66.0.2";

/** HOW: udp-pktinfo, udp-bind, tcp-bind; sends by the route first, then by DEV. */
const MOVE = `
import errno, socket, struct, sys, time
host, port, how, dev = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
idx = socket.if_nametoindex(dev)
out = []
def attempt(name, fn):
    try:
        fn(); out.append(name + ":ok")
    except OSError as e:
        out.append(name + ":" + errno.errorcode.get(e.errno, str(e.errno)))
if how.startswith("udp"):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    attempt("route", lambda: s.sendto(b"q", (host, port)))
    time.sleep(0.2)
    if how == "udp-pktinfo":
        pk = struct.pack("=I4s4s", idx, b"\\0" * 4, b"\\0" * 4)
        for i in range(3):
            attempt("dev", lambda: s.sendmsg([b"q"], [(socket.IPPROTO_IP, 8, pk)], 0, (host, port)))
    else:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, dev.encode())
        for i in range(3):
            attempt("dev", lambda: s.sendto(b"q", (host, port)))
else:
    s = socket.create_connection((host, port), timeout=5)
    attempt("route", lambda: s.send(b"x"))
    time.sleep(0.2)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, dev.encode())
    for i in range(3):
        attempt("dev", lambda: s.send(b"x" * 100)); time.sleep(0.1)
    time.sleep(0.5)
print(" ".join(out))
`;

test("post-route check: a socket moved to a forbidden interface after its first packet", async (t) => {
  const cg = cgroupForTest(t, "postmove");
  let ns = "";
  const lab = await startCgroupLab(
    cg,
    "post-route moves",
    (l) => {
      const ip = (...args: string[]) => execFileSync("ip", args);
      ip("link", "add", "evil0", "netns", l.b, "type", "veth", "peer", "evil1", "netns", l.a);
      ip("-n", l.b, "addr", "add", `${EVIL_B}/24`, "dev", "evil0");
      ip("-n", l.a, "addr", "add", `${EVIL_A}/24`, "dev", "evil1");
      // only what the clients send crosses evil0: no IPv6 autoconfiguration chatter
      for (const [n, dev] of [
        [l.b, "evil0"],
        [l.a, "evil1"],
      ] as const)
        ip("netns", "exec", n, "sysctl", "-qw", `net.ipv6.conf.${dev}.disable_ipv6=1`);
      ip("-n", l.b, "link", "set", "evil0", "up");
      ip("-n", l.a, "link", "set", "evil1", "up");
      ns = l.a;
      return `version: 1
mode: prevent
defaults: { ingress: allow, egress: allow }
attach: { interfaces: [${l.ifB}], cgroup: ${cg.cgroup} }
rules:
  - { name: no-evil, direction: egress, action: block, interface: { name: [evil0] } }
`;
    },
    ["tcp:80", "udp:53"],
  );
  /** IPv4 packets evil1 received (ARP asks only for a packet let out). */
  const received = () => {
    const j = JSON.parse(
      execFileSync("ip", ["-n", ns, "-j", "-s", "link", "show", "evil1"]).toString(),
    ) as {
      stats64: { rx: { packets: number } };
    }[];
    return j[0]!.stats64.rx.packets;
  };
  const run = (script: string, args: string[]) => {
    const before = received();
    const r = runIn(lab.b, cg.dir, asNobody(["/usr/bin/python3", "-c", script, ...args]));
    assert.equal(r.status, 0, r.stderr);
    return { out: r.stdout.trim(), leaked: received() - before };
  };

  await t.test("UDP, IP_PKTINFO naming evil0 on later datagrams: dropped, EPERM", () => {
    const r = run(MOVE, [lab.v4.a, "53", "udp-pktinfo", "evil0"]);
    assert.match(r.out, /^route:ok /, r.out);
    assert.equal(r.leaked, 0, `left by evil0: ${r.out}`);
    assert.match(r.out, /dev:EPERM/, r.out);
  });

  await t.test("UDP, SO_BINDTODEVICE evil0 after the first datagram: dropped", () => {
    const r = run(MOVE, [lab.v4.a, "53", "udp-bind", "evil0"]);
    assert.match(r.out, /^route:ok /, r.out);
    assert.equal(r.leaked, 0, `left by evil0: ${r.out}`);
  });

  await t.test("TCP, SO_BINDTODEVICE evil0 after connect: no segment leaves by evil0", async () => {
    const r = run(MOVE, [lab.v4.a, "80", "tcp-bind", "evil0"]);
    assert.match(r.out, /^route:ok /, r.out);
    assert.equal(r.leaked, 0, `left by evil0: ${r.out}`);
    await lab.daemon.waitFor(/BLOCKED egress tcp .* on evil0 by rule no-evil .*\(after routing\)/);
  });
});

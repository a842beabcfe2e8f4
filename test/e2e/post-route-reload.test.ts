// The post-route check across a reload (docs/route-aware.md): a connection judged by the interface
// its first packet really left by is judged again, by that interface, under the policy a reload
// brings. The lab of post-route.test.ts: namespace b reaches namespace a over its veth and over
// evil0, which a rule forbids; one uid is policy-routed out of evil0, which the route mirror does
// not see. Each client keeps one socket open across the reload.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { cgroupForTest, startCgroupLab, type CgroupForTest } from "../helpers/cgroup-lab.ts";
import { spawnLines, type LineChild } from "../helpers/child.ts";
import type { MoatLab } from "../helpers/moat-lab.ts";
import { reloadPolicy } from "../helpers/policy-reload.ts";

const EVIL_B = "10.66.0.1";
const EVIL_A = "10.66.0.2";
const UID = 4242; // its connections are routed by table 4242, out of evil0

/**
 * One connected socket, driven by stdin. udp: each line sends a datagram ("sent" or the errno
 * name). tcp: "head" sends the start of an HTTP request ("sent"), "end" finishes it and reads the
 * answer ("answered", "closed" or the errno name).
 */
const CLIENT = `
import errno, os, socket, sys
host, port, proto = sys.argv[1], int(sys.argv[2]), sys.argv[3]
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM)
s.settimeout(5)
print("pid", os.getpid(), flush=True)
def say(word):
    print(word, flush=True)
try:
    s.connect((host, port))
    say("connected")
except OSError as e:
    say(errno.errorcode.get(e.errno, str(e.errno)))
for line in sys.stdin:
    try:
        if proto == "udp":
            s.send(b"q")
            say("sent")
        elif line.strip() == "head":
            s.sendall(b"GET / HTTP/1.0\\r\\n")
            say("sent")
        else:
            s.sendall(b"\\r\\n")
            say("answered" if s.recv(4096).startswith(b"HTTP/1.1 200") else "closed")
    except socket.timeout:
        say("timeout")
    except OSError as e:
        say(errno.errorcode.get(e.errno, str(e.errno)))
`;

interface Client {
  child: LineChild;
  pid: string;
  /** What connect() did: "connected" or the errno name. */
  connected: string;
}

test("post-route check: a reload judges a connection again by its real interface", async (t) => {
  const cg = cgroupForTest(t, "postreload");
  const policy = (mode: string, ifB: string) => `version: 1
mode: ${mode}
defaults: { ingress: allow, egress: allow }
attach: { interfaces: [${ifB}], cgroup: ${cg.cgroup} }
rules:
  - { name: no-evil, direction: egress, action: block, interface: { name: [evil0] } }
`;
  const lab = await startCgroupLab(
    cg,
    "post-route reload",
    (l) => {
      const ip = (...args: string[]) => execFileSync("ip", args);
      ip("link", "add", "evil0", "netns", l.b, "type", "veth", "peer", "evil1", "netns", l.a);
      ip("-n", l.b, "addr", "add", `${EVIL_B}/24`, "dev", "evil0");
      ip("-n", l.a, "addr", "add", `${EVIL_A}/24`, "dev", "evil1");
      ip("-n", l.b, "link", "set", "evil0", "up");
      ip("-n", l.a, "link", "set", "evil1", "up");
      ip("-n", l.b, "route", "add", `${l.v4.a}/32`, "via", EVIL_A, "dev", "evil0", "table", "4242");
      ip("-n", l.b, "rule", "add", "uidrange", `${UID}-${UID}`, "lookup", "4242", "pref", "1000");
      return policy("prevent", l.ifB);
    },
    ["tcp:80", "udp:53,5353"],
  );
  const a = lab.v4.a.replaceAll(".", "\\.");
  const reload = async (mode: string) => {
    await reloadPolicy(lab, policy(mode, lab.ifB));
  };
  const event = (verdict: string, proto: string, port: number, c: Client) =>
    lab.daemon.waitFor(
      new RegExp(
        `${verdict} egress ${proto} \\S+ -> ${a}:${port} on evil0 by rule no-evil \\(python3 pid ${c.pid}\\)`,
      ),
    );

  await t.test(
    "prevent -> detect: a blocked UDP socket sends again, reported detected",
    async () => {
      const udp = await startClient(cg, lab, 53, "udp");
      assert.equal(udp.connected, "connected");
      assert.equal(await step(udp, "send"), "EPERM");
      await event("BLOCKED", "udp", 53, udp);
      await reload("detect");
      assert.equal(await step(udp, "send"), "sent", "blocked under the old policy, detected now");
      await event("DETECTED", "udp", 53, udp);
      udp.child.kill();
    },
  );

  await t.test(
    "detect -> prevent: a UDP socket that sent is refused, reported blocked",
    async () => {
      // another port than above: the daemon's output folds repeated detections of one kind
      const udp = await startClient(cg, lab, 5353, "udp");
      assert.equal(await step(udp, "send"), "sent");
      await event("DETECTED", "udp", 5353, udp);
      await reload("prevent");
      assert.equal(await step(udp, "send"), "EPERM", "detected under the old policy, blocked now");
      await event("BLOCKED", "udp", 5353, udp);
      udp.child.kill();
    },
  );

  await t.test("detect -> prevent: an open TCP connection is cut, reported blocked", async () => {
    await reload("detect");
    const tcp = await startClient(cg, lab, 80, "tcp");
    assert.equal(tcp.connected, "connected");
    await event("DETECTED", "tcp", 80, tcp);
    assert.equal(await step(tcp, "head"), "sent");
    await reload("prevent");
    // the segment is dropped and the daemon destroys the socket: the read fails at once
    assert.equal(await step(tcp, "end"), "ECONNABORTED");
    await event("BLOCKED", "tcp", 80, tcp);
    tcp.child.kill();
  });
});

/** CLIENT as uid UID in the attached cgroup, connected to namespace a's `port`. */
async function startClient(
  cg: CgroupForTest,
  lab: MoatLab,
  port: number,
  proto: "tcp" | "udp",
): Promise<Client> {
  const child = spawnLines("nsenter", [
    `--net=/run/netns/${lab.b}`,
    "sh",
    "-c",
    `echo $$ > ${cg.dir}/cgroup.procs && exec "$@"`,
    "sh",
    "setpriv",
    `--reuid=${UID}`,
    `--regid=${UID}`,
    "--clear-groups",
    "/usr/bin/python3",
    "-c",
    CLIENT,
    lab.v4.a,
    String(port),
    proto,
  ]);
  cg.onClose(() => child.kill());
  const pid = (await child.waitFor(/^pid \d+$/)).slice(4);
  const connected = await child.waitFor(/^(connected|E[A-Z]+|timeout)$/);
  return { child, pid, connected };
}

/** One command to the client: what it printed. */
function step(client: Client, command: "send" | "head" | "end"): Promise<string> {
  client.child.send(command);
  return client.child.waitFor(/^(sent|answered|closed|timeout|E[A-Z]+)$/);
}

// The post-route check, seen by real clients whose connection leaves by another interface than
// the route mirror predicts. Namespace b (moat's host) reaches namespace a over its veth and over a
// second veth, evil0, that a rule forbids. The main table routes a's address over the first veth,
// which is what the mirror sees; SO_BINDTODEVICE and a policy-routing rule for one uid send the
// connection out of evil0 anyway. The cgroup_skb egress program judges the first packet by the
// real interface: the SYN is dropped and the daemon destroys the socket (connect() fails at once
// with ECONNABORTED, not after SYN retries); a UDP send fails with EPERM. Detect mode reports it.
import { test } from "node:test";
import assert from "node:assert/strict";
import { cgroupForTest, startCgroupLab } from "../helpers/cgroup-lab.ts";
import { runIn } from "../helpers/cgroup-run.ts";
import { http } from "../helpers/api-client.ts";
import { addEvil0Route, EVIL_A, EVIL_UID } from "../helpers/evil0-route.ts";
import { reloadPolicy } from "../helpers/policy-reload.ts";

/** One client call: "connected" / "sent" or the errno name of each try, and how long it took. */
const CLIENT = `
import errno, json, socket, sys, time
host, port, proto, dev = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM)
if dev:
    s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, dev.encode())
s.settimeout(5)
out = []
t = time.monotonic()
for i in range(1 if proto == "tcp" else 2):
    try:
        if proto == "tcp":
            s.connect((host, port))
            out.append("connected")
        else:
            s.sendto(b"q", (host, port))
            out.append("sent")
    except socket.timeout:
        out.append("timeout")
    except OSError as e:
        out.append(errno.errorcode.get(e.errno, str(e.errno)))
    if i == 0:
        ms = (time.monotonic() - t) * 1000
print(json.dumps({"out": out, "ms": ms}))
`;

interface Client {
  out: string[];
  ms: number;
}

test("post-route check: a connection that leaves by another interface than predicted", async (t) => {
  const cg = cgroupForTest(t, "postroute");
  const { cgroup, dir } = cg;
  const policy = (mode: string, cg: string, ifB: string) => `version: 1
mode: ${mode}
defaults: { ingress: allow, egress: allow }
attach: { interfaces: [${ifB}], cgroup: ${cg} }
rules:
  - { name: no-evil, direction: egress, action: block, interface: { name: [evil0] } }
`;
  const lab = await startCgroupLab(
    cg,
    "post-route check",
    (l) => {
      // a second link between the namespaces, and a routing table that uses it for one uid
      addEvil0Route(l);
      return policy("prevent", cgroup, l.ifB);
    },
    ["tcp:80", "udp:53"],
  );

  const client = (host: string, port: number, proto: "tcp" | "udp", how: "" | "bind" | "uid") => {
    const py = [
      "/usr/bin/python3",
      "-c",
      CLIENT,
      host,
      String(port),
      proto,
      how === "bind" ? "evil0" : "",
    ];
    const cmd =
      how === "uid"
        ? ["setpriv", `--reuid=${EVIL_UID}`, `--regid=${EVIL_UID}`, "--clear-groups", ...py]
        : py;
    const r = runIn(lab.b, dir, cmd);
    assert.equal(r.status, 0, r.stderr);
    return JSON.parse(r.stdout) as Client;
  };
  const a = lab.v4.a.replaceAll(".", "\\.");

  await t.test("without a trick the route mirror's prediction decides, as before", async () => {
    assert.deepEqual(client(lab.v4.a, 80, "tcp", "").out, ["connected"]);
    // evil0's own subnet: the mirror knows it leaves by evil0, connect() gets EPERM itself
    const direct = client(EVIL_A, 80, "tcp", "");
    assert.deepEqual(direct.out, ["EPERM"]);
    const line = await lab.daemon.waitFor(/BLOCKED egress tcp .* -> 10\.66\.0\.2:80 .*no-evil/);
    assert.doesNotMatch(line, /after routing/);
  });

  await t.test("SO_BINDTODEVICE evil0: connect() fails at once with ECONNABORTED", async () => {
    const r = client(lab.v4.a, 80, "tcp", "bind");
    assert.deepEqual(r.out, ["ECONNABORTED"]);
    // ECONNABORTED, not ETIMEDOUT: the socket was cut, not left to its SYN retries
    t.diagnostic(`SO_BINDTODEVICE: ECONNABORTED after ${r.ms.toFixed(1)} ms`);
    // curl --interface binds the same way: "Couldn't connect to server" (exit 7), not a timeout (28)
    const curl = runIn(lab.b, dir, [
      "curl",
      "-sS",
      "--max-time",
      "5",
      "--interface",
      "evil0",
      `http://${lab.v4.a}:80/`,
    ]);
    assert.equal(curl.status, 7, curl.stderr);
    await lab.daemon.waitFor(
      new RegExp(
        `BLOCKED egress tcp \\S+ -> ${a}:80 on evil0 by rule no-evil \\(python3 pid \\d+\\) \\(after routing\\)`,
      ),
    );
  });

  await t.test("policy routing by uid: tcp gets ECONNABORTED, udp EPERM", async () => {
    const tcp = client(lab.v4.a, 80, "tcp", "uid");
    assert.deepEqual(tcp.out, ["ECONNABORTED"]);
    t.diagnostic(`uid ${EVIL_UID}: ECONNABORTED after ${tcp.ms.toFixed(1)} ms`);
    await lab.daemon.waitFor(
      new RegExp(
        `BLOCKED egress tcp \\S+ -> ${a}:80 on evil0 by rule no-evil .*\\(after routing\\)`,
      ),
    );
    // the first datagram is dropped after routing (EPERM from send), the next refused at sendmsg()
    const udp = client(lab.v4.a, 53, "udp", "uid");
    assert.deepEqual(udp.out, ["EPERM", "EPERM"]);
    await lab.daemon.waitFor(
      new RegExp(
        `BLOCKED egress udp \\S+ -> ${a}:53 on evil0 by rule no-evil .*\\(after routing\\)`,
      ),
    );
    const status = await http({ socketPath: lab.apiSocket }, "GET", "/v1/status");
    const counters = (JSON.parse(status.body) as { counters: Record<string, { packets: unknown }> })
      .counters;
    assert.ok(Number(counters.postRouteMiss?.packets) >= 3, status.body);
  });

  await t.test("detect mode: the connection passes and is reported as detected", async () => {
    await reloadPolicy(lab, policy("detect", cgroup, lab.ifB));
    const r = client(lab.v4.a, 80, "tcp", "bind");
    assert.deepEqual(r.out, ["connected"]);
    await lab.daemon.waitFor(
      new RegExp(
        `DETECTED egress tcp \\S+ -> ${a}:80 on evil0 by rule no-evil \\(python3 pid \\d+\\) \\(after routing\\)`,
      ),
    );
  });
});

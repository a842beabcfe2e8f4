// Who escapes redirects, and whose record a proxy finds (docs/redirect.md, "No loop" and "The
// proxy's side"), seen by real unprivileged clients:
// - a process that binds a UDP socket on a target's port (moat's L7 relay's, a proxy's) is still
//   redirected: only moat and the process that owns the socket a redirect would reach are exempt;
// - a redirected client's record goes with its socket: a later client that binds the same address
//   and port and connects (or sends) straight to the proxy finds none, and is refused.
import { test } from "node:test";
import assert from "node:assert/strict";
import { cgroupForTest, startCgroupLab, startHttpPeer } from "../helpers/cgroup-lab.ts";
import { asNobody, runIn } from "../helpers/cgroup-run.ts";
import { spawnLines } from "../helpers/child.ts";
import { NODE, ROOT } from "../helpers/paths.ts";

const PROXY = { lookup: 18011, udp: 18012 } as const;
const PY = "/usr/bin/python3";

/** The loopback tcp listeners' ports, as /proc/net/tcp shows them. */
const LISTENERS = `
def listeners():
    out = []
    for line in open("/proc/net/tcp").read().splitlines()[1:]:
        f = line.split(); ip, p = f[1].split(":")
        if f[3] == "0A" and ip == "0100007F": out.append(int(p, 16))
    return out
def get(s, path):
    s.sendall(("GET %s HTTP/1.0\\r\\nHost: x\\r\\n\\r\\n" % path).encode())
    out = b""
    while True:
        c = s.recv(4096)
        if not c: break
        out += c
    return out.decode(errors="replace").split("\\r\\n\\r\\n", 1)[-1].strip()
`;

/** Binds udp 0.0.0.0 on PORTS (all: every loopback tcp listener's), then GET PATH from HOST:PORT. */
const SQUAT = `${LISTENERS}
import socket, sys
host, port, path, ports = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
keep = []
for p in (listeners() if ports == "all" else [int(x) for x in ports.split(",")]):
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        u.bind(("0.0.0.0", p)); keep.append(u)
    except OSError:
        pass
print("bound", len(keep), file=sys.stderr)
print(get(socket.create_connection((host, port), timeout=5), path))
`;

/** A redirected client: GET PATH from HOST:80; prints its port, then the answer. */
const CLIENT = `${LISTENERS}
import socket, sys
s = socket.create_connection((sys.argv[1], 80), timeout=5)
print(s.getsockname()[1])
print(get(s, sys.argv[2]))
`;

/** Binds 127.0.0.1:PORT (SO_REUSEADDR) and connects straight to each loopback listener. */
const REUSE = `${LISTENERS}
import socket, sys, time
port, path = int(sys.argv[1]), sys.argv[2]
for r in listeners():
    try:
        s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port)); s.settimeout(5); s.connect(("127.0.0.1", r))
        print(r, repr(get(s, path)))
        s.close()
    except OSError as e:
        print(r, "error", e)
    time.sleep(0.2)
`;

/** udp: sends to HOST:PORT from PORT_FROM (0: any) and prints its port and the answer. */
const UDP = `
import socket, sys
host, port, src = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(3)
if src:
    s.bind(("0.0.0.0", src))
s.sendto(b"q", (host, port))
print(s.getsockname()[1])
try:
    print(s.recvfrom(4096)[0].decode())
except OSError as e:
    print("error", e)
`;

test("redirect exemptions and records belong to the process and socket they name", async (t) => {
  const cg = cgroupForTest(t, "redirexempt");
  const lab = await startCgroupLab(
    cg,
    "redirect-exempt",
    (l) => `version: 1
mode: prevent
defaults: { ingress: allow, egress: allow }
attach: { interfaces: [${l.ifB}], cgroup: ${cg.cgroup} }
rules:
  - { name: root-secret, direction: egress, action: allow, process: { user: [0] }, layer4: { protocol: tcp, port: [80] }, layer7: { http: { path: ["/secret*"] } } }
  - { name: no-secret, direction: egress, action: block, layer4: { protocol: tcp, port: [80] }, layer7: { http: { path: ["/secret*"] } } }
redirect:
  - name: inspect
    match: { direction: egress, layer3: { remote: [${l.v4.a}] }, layer4: { protocol: tcp, port: [8080] } }
    to: 127.0.0.1:${PROXY.lookup}
  - name: inspect-udp
    match: { direction: egress, layer3: { remote: [${l.v4.a}] }, layer4: { protocol: udp, port: [5353] } }
    to: 127.0.0.1:${PROXY.udp}
`,
    ["tcp:8080", "udp:5353"],
  );
  const server = await startHttpPeer(cg, lab);
  for (const [mode, port] of [
    ["lookup", PROXY.lookup],
    ["udp", PROXY.udp],
  ] as const) {
    const proxy = spawnLines("nsenter", [
      `--net=/run/netns/${lab.b}`,
      NODE,
      "--disable-warning=ExperimentalWarning",
      `${ROOT}test/helpers/redirect-proxy.ts`,
      mode,
      String(port),
      lab.apiSocket,
    ]);
    cg.onClose(() => proxy.kill());
    await proxy.waitFor(/^listening$/);
  }
  const py = (script: string, args: string[], root = false) => {
    const cmd = [PY, "-c", script, ...args];
    return runIn(lab.b, cg.dir, root ? cmd : asNobody(cmd), 60_000);
  };

  await t.test(
    "a UDP bind on the target's port does not exempt a process from its redirect",
    () => {
      const plain = py(SQUAT, [lab.v4.a, "8080", "/", "1"]);
      assert.match(plain.stdout, /"redirect":"inspect"/, plain.stderr);
      const squat = py(SQUAT, [lab.v4.a, "8080", "/", String(PROXY.lookup)]);
      assert.match(squat.stdout, /"redirect":"inspect"/, `escaped the redirect: ${squat.stderr}`);
    },
  );

  await t.test("UDP binds on every loopback listener's port do not escape layer7 rules", () => {
    const plain = py(SQUAT, [lab.v4.a, "80", "/secret.txt", "1"]);
    assert.match(plain.stdout, /blocked by rule no-secret/, plain.stderr);
    const squat = py(SQUAT, [lab.v4.a, "80", "/secret.txt", "all"]);
    assert.match(squat.stdout, /blocked by rule no-secret/, `escaped the relay: ${squat.stderr}`);
    assert.ok(!server.lines.some((l) => /secret/.test(l)), server.lines.join(" | "));
  });

  await t.test(
    "a closed client's record is gone: its address is nobody else's identity",
    async () => {
      const root = py(CLIENT, [lab.v4.a, "/pub"], true);
      assert.match(root.stdout, /hello over/, root.stderr);
      const port = root.stdout.split("\n")[0]!;
      await new Promise((r) => setTimeout(r, 300));
      const reuse = py(REUSE, [port, "/secret.txt"]);
      assert.doesNotMatch(reuse.stdout, /hello over/, `judged as root: ${reuse.stdout}`);
      assert.doesNotMatch(reuse.stdout, /"original"/, `root's record: ${reuse.stdout}`);
      assert.ok(!server.lines.some((l) => /secret/.test(l)), server.lines.join(" | "));
    },
  );

  await t.test(
    "UDP: a later socket on a redirected client's port, sent straight to the proxy, is unknown",
    () => {
      const first = py(UDP, [lab.v4.a, "5353", "0"], true);
      assert.match(first.stdout, /"redirect":"inspect-udp"/, first.stderr);
      const port = first.stdout.split("\n")[0]!;
      const direct = py(UDP, ["127.0.0.1", String(PROXY.udp), port]);
      assert.doesNotMatch(direct.stdout, /"redirect"/, `judged as root: ${direct.stdout}`);
      assert.match(direct.stdout, /ENOTREDIRECTED/, direct.stderr);
    },
  );
});

// Hostile DNS queries against the running daemon, from an unprivileged user of the attached
// cgroup, over TCP (redirected to moat's proxy by the kernel): a 2 KB query of 300 questions, each
// a compression pointer to one 253-character name, would be answered FORMERR with every question
// written out in full (77,712 bytes: more than a TCP DNS message holds); a server the user asks
// answers 3,800 compressed A records and an HTTPS record with an ipv4hint, which moat writes again
// without the hint, uncompressed (95,051 bytes): the UDP answer is truncated, dig asks again over
// TCP. The daemon lives on, the clients get a 12-byte FORMERR and SERVFAIL, and the next client's
// lookup is answered.
import { test } from "node:test";
import assert from "node:assert/strict";
import { cgroupForTest, startCgroupLab } from "../helpers/cgroup-lab.ts";
import { asNobody, runIn } from "../helpers/cgroup-run.ts";
import { spawnLines } from "../helpers/child.ts";
import { dig } from "../helpers/dns-clients.ts";
import { startDnsPeers } from "../helpers/dns-lab.ts";

/** Python: one TCP query of `count` questions to `server`:53; prints "answer LENGTH RCODE" or "closed". */
const pointerQuestions = (server: string, count: number): string[] => [
  "/usr/bin/python3",
  "-c",
  `import socket, struct
name = b"".join(b"\\x3f" + b"a" * 63 for _ in range(3)) + b"\\x3d" + b"b" * 61 + b"\\0"
body = name + b"\\0\\1\\0\\1" + b"\\xc0\\x0c\\0\\1\\0\\1" * (${count} - 1)
m = struct.pack(">HHHHHH", 7, 0x0100, ${count}, 0, 0, 0) + body
s = socket.create_connection(("${server}", 53), timeout=10)
s.sendall(struct.pack(">H", len(m)) + m)
got = b""
try:
    while True:
        c = s.recv(70000)
        if not c: break
        got += c
        if len(got) >= 2 and len(got) >= 2 + struct.unpack(">H", got[:2])[0]: break
except OSError:
    pass
if len(got) >= 2 + 12:
    a = got[2:]
    print("answer", len(a), "id", struct.unpack(">H", a[:2])[0], "rcode", a[3] & 15)
else:
    print("closed")
`,
];

/**
 * Python: a DNS server on `ip`:53 (UDP and TCP) answering every query with its question, 3,800 A
 * records named by a pointer to it, and one HTTPS record with an ipv4hint.
 */
const growingServer = (ip: string): string[] => [
  "/usr/bin/python3",
  "-c",
  `import socket, struct, threading
def answer(q):
    question = q[12:q.index(b"\\0", 12) + 5]
    a = b"\\xc0\\x0c" + struct.pack(">HHIH", 1, 1, 60, 4) + bytes([10, 9, 9, 9])
    https = b"\\xc0\\x0c" + struct.pack(">HHIH", 65, 1, 60, 11) + b"\\0\\1\\0" + struct.pack(">HH", 4, 4) + bytes([1, 2, 3, 4])
    return q[:2] + struct.pack(">HHHHH", 0x8180, 1, 3801, 0, 0) + question + a * 3800 + https
def serve(c):
    with c:
        while True:
            h = c.recv(2)
            if len(h) < 2: return
            n = struct.unpack(">H", h)[0]; q = b""
            while len(q) < n: q += c.recv(n - len(q))
            m = answer(q); c.sendall(struct.pack(">H", len(m)) + m)
t = socket.socket(); t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); t.bind(("${ip}", 53)); t.listen(16)
def accept():
    while True: threading.Thread(target=serve, args=(t.accept()[0],), daemon=True).start()
threading.Thread(target=accept, daemon=True).start()
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("${ip}", 53))
print("ready", flush=True)
while True:
    q, peer = u.recvfrom(70000); u.sendto(answer(q), peer)
`,
];

test("a TCP query whose FORMERR would outgrow a DNS message leaves the daemon running", async (t) => {
  const cg = cgroupForTest(t, "dnshostile");
  const lab = await startCgroupLab(
    cg,
    "dns hostile queries",
    (l) => `version: 1
mode: prevent
defaults: { ingress: allow, egress: allow }
attach: { interfaces: [${l.ifB}], cgroup: ${cg.cgroup} }
logging: { audit: { path: ${l.auditPath} } }
dns: { resolvers: [${l.v4.a}] }
rules:
  - { name: no-blocked, direction: egress, action: block, layer7: { dns: { name: [blocked.moat.test] } } }
`,
    [],
  );
  const dns = await startDnsPeers(lab);
  cg.onClose(() => dns.close());
  const where = { ns: lab.b, cgroupDir: cg.dir };
  const before = dig(where, dns.zone.upstream, "allowed.moat.test");
  assert.equal(before.rcode, "NOERROR", before.stdout + before.stderr);

  const hostile = runIn(lab.b, cg.dir, asNobody(pointerQuestions(dns.zone.upstream, 300)));
  assert.equal(hostile.status, 0, hostile.stderr);
  assert.match(
    hostile.stdout,
    /^(answer 12 id 7 rcode 1|closed)$/m,
    "a 12-byte FORMERR (or a closed connection)",
  );

  // the server the user asks: an address of namespace a
  const growing = lab.v4.a.replace(/\.1$/, ".40");
  runIn(lab.a, null, ["ip", "addr", "add", `${growing}/32`, "dev", lab.ifA]);
  const server = spawnLines("ip", ["netns", "exec", lab.a, ...growingServer(growing)]);
  cg.onClose(() => server.kill("SIGKILL"));
  await server.waitFor(/^ready$/);
  const grown = dig(where, growing, "many.moat.test", ["+bufsize=1232"]);
  assert.equal(grown.retriedOverTcp, true, grown.stdout);
  assert.equal(grown.rcode, "SERVFAIL", grown.stdout + grown.stderr);

  const after = dig(where, dns.zone.upstream, "allowed.moat.test", ["+tcp"]);
  const daemonSaid = [...lab.daemon.lines, ...lab.daemon.stderr].slice(-4).join("\n");
  assert.equal(after.rcode, "NOERROR", `${after.stdout}${after.stderr}\ndaemon: ${daemonSaid}`);
  assert.deepEqual(after.addresses, [dns.zone.allowed]);
  assert.equal(lab.daemon.proc.exitCode, null, "the daemon still runs");
  assert.equal(lab.daemon.proc.signalCode, null, "the daemon still runs");
});

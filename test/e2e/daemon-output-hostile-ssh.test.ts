// The daemon's output (the journal under moat.service) against hostile SSH peers: moat's relay
// logs what went wrong with a connection an ssh rule covers, and that message quotes the peer.
// A server whose host-key type holds a newline, a whole forged event line and ESC, and a local
// client whose version line holds ESC, BEL and CR, each leave one escaped line on the daemon's
// stdout: no forged line, no terminal control.
//
// The server is a python3 script in the peer namespace that speaks just enough SSH (its version,
// a KEXINIT, a key-exchange reply with that key); the clients run in the attached cgroup.
//
// Run time: about 15 s on an idle machine (the daemon's start is most of it).
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cgroupForTest, startCgroupLab } from "../helpers/cgroup-lab.ts";
import { runIn } from "../helpers/cgroup-run.ts";
import { spawnLines } from "../helpers/child.ts";
import { daemonSaid } from "../helpers/l7-lab.ts";

const PORT = 2299;
const FORGED = "2026-01-01T00:00:00.000Z ALLOWED egress tcp 10.0.0.1:1 -> 10.0.0.2:22 by rule ok";

/** An SSH server that answers any client with a host key of type `x\n<FORGED>\e[2K-cert-v01@openssh.com`. */
const HOSTILE_SERVER = String.raw`
import socket, struct, sys
FORGED = sys.argv[3]
def string(b): return struct.pack(">I", len(b)) + b
def packet(payload):
    pad = 8 - (len(payload) + 5) % 8
    if pad < 4: pad += 8
    return struct.pack(">IB", len(payload) + pad + 1, pad) + payload + b"\0" * pad
def kexinit():
    lists = [b"curve25519-sha256,curve25519-sha256@libssh.org", b"ssh-ed25519", b"aes128-ctr", b"aes128-ctr",
             b"hmac-sha2-256", b"hmac-sha2-256", b"none", b"none", b"", b""]
    return bytes([20]) + b"\0" * 16 + b"".join(string(l) for l in lists) + b"\0" + b"\0\0\0\0"
key_type = b"x\n" + FORGED.encode() + b"\x1b[2K-cert-v01@openssh.com"
host_key = string(key_type) + string(b"\0" * 32) + string(b"\0" * 32)
reply = bytes([31]) + string(host_key) + string(b"\0" * 32) + string(b"\0" * 64)
srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind((sys.argv[1], int(sys.argv[2])))
srv.listen(8)
print("listening", flush=True)
while True:
    c, _ = srv.accept()
    try:
        c.sendall(b"SSH-2.0-Hostile_1.0\r\n" + packet(kexinit()) + packet(reply))
        c.settimeout(5)
        while c.recv(4096): pass
    except OSError:
        pass
    c.close()
`;

/** A client that sends `line` (and, with "kexinit", a KEXINIT) and reads until the connection closes. */
const CLIENT = String.raw`
import socket, struct, sys
def string(b): return struct.pack(">I", len(b)) + b
def packet(payload):
    pad = 8 - (len(payload) + 5) % 8
    if pad < 4: pad += 8
    return struct.pack(">IB", len(payload) + pad + 1, pad) + payload + b"\0" * pad
lists = [b"curve25519-sha256", b"ssh-ed25519", b"aes128-ctr", b"aes128-ctr",
         b"hmac-sha2-256", b"hmac-sha2-256", b"none", b"none", b"", b""]
kexinit = bytes([20]) + b"\0" * 16 + b"".join(string(l) for l in lists) + b"\0" + b"\0\0\0\0"
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)
s.sendall(sys.argv[3].encode("latin1") + (packet(kexinit) if sys.argv[4:] == ["kexinit"] else b""))
try:
    while s.recv(4096): pass
except OSError:
    pass
`;

/** Terminal and line controls, C1 and the bidi/zero-width characters. */
// eslint-disable-next-line no-control-regex -- it looks for control characters
const UNSAFE = /[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2066-\u2069]/;

test("hostile SSH peers cannot forge or colour the daemon's output lines", async (t) => {
  const cg = cgroupForTest(t, "hostilessh");
  const dir = mkdtempSync(join(tmpdir(), "moat-hostile-ssh-"));
  cg.onClose(() => rmSync(dir, { recursive: true, force: true }));
  const server = join(dir, "server.py");
  const client = join(dir, "client.py");
  writeFileSync(server, HOSTILE_SERVER);
  writeFileSync(client, CLIENT);
  const lab = await startCgroupLab(
    cg,
    "hostile ssh output",
    (l) => `version: 1
mode: prevent
defaults: { ingress: allow, egress: allow }
attach: { interfaces: [${l.ifB}], cgroup: ${cg.cgroup} }
rules:
  - { name: ssh-any, direction: egress, action: allow, log: true, layer4: { protocol: tcp, port: [${PORT}] }, layer7: { ssh: {} } }
`,
    [],
  );
  const peer = spawnLines("ip", [
    "netns",
    "exec",
    lab.a,
    "python3",
    server,
    lab.v4.a,
    String(PORT),
    FORGED,
  ]);
  cg.onClose(() => peer.kill());
  await peer.waitFor(/^listening$/);
  const lines = () => lab.daemon.lines;
  const inCgroup = (name: string, cmd: string[]) => {
    const d = join(cg.dir, name);
    mkdirSync(d);
    return runIn(lab.b, d, cmd, 30_000);
  };

  await t.test("a server's host-key type with a forged event line", async () => {
    inCgroup("ssh-client", [
      "python3",
      client,
      lab.v4.a,
      String(PORT),
      "SSH-2.0-OpenSSH_9.2\r\n",
      "kexinit",
    ]);
    const said = await daemonSaid(lab, /l7 relay: ssh to .*: server: host certificate type/);
    assert.doesNotMatch(said, UNSAFE);
    assert.ok(!lines().some((l) => l.startsWith(FORGED)), `a forged line:\n${lines().join("\n")}`);
  });

  await t.test("a local client's version line with ESC, BEL and CR", async () => {
    inCgroup("v15-client", [
      "python3",
      client,
      lab.v4.a,
      String(PORT),
      "SSH-1.5-\x1b[2J\x1b]0;owned\x07\rFAKE LINE\r\n",
    ]);
    const said = await daemonSaid(lab, /l7 relay: ssh to .*: not SSH version 2/);
    assert.doesNotMatch(said, UNSAFE);
    assert.ok(
      !lines().some((l) => l.startsWith("FAKE LINE")),
      `a forged line:\n${lines().join("\n")}`,
    );
  });

  assert.deepEqual(
    lines().filter((l) => UNSAFE.test(l)),
    [],
    "no daemon line holds a control character",
  );
});

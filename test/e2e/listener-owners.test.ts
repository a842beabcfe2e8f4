// The owners of sockets bound before moat attached come from the kernel (sock_diag: each listening
// TCP and bound UDP socket's inode, uid and cookie) and /proc (the processes holding that inode),
// never from another tool's text: a process that names itself like a field of `ss` output is
// attributed to itself.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Attribution } from "../../src/attribution/index.ts";
import { boundSocketOwners } from "../../src/attribution/listeners.ts";
import { boundSockets } from "../../src/datapath/bound-sockets.ts";
import { spawnLines } from "../helpers/child.ts";

// comm is 15 bytes at most: this one fits, quotes and all
const HOSTILE = 'x",pid=1,fd=3';

const PYTHON = `
import ctypes, socket, struct, sys
ctypes.CDLL(None).prctl(15, sys.argv[1].encode(), 0, 0, 0)  # PR_SET_NAME
out = []
for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
    for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
        s = socket.socket(family, kind)
        s.bind((host, 0))
        if kind == socket.SOCK_STREAM:
            s.listen()
        out.append(s)
        print(struct.unpack("Q", s.getsockopt(socket.SOL_SOCKET, 57, 8))[0], flush=True)  # SO_COOKIE
print("ready", flush=True)
sys.stdin.read()
`;

test("a process named like ss output owns its own listening sockets", async () => {
  const child = spawnLines("/usr/bin/python3", ["-c", PYTHON, HOSTILE]);
  try {
    await child.waitFor(/^ready$/);
    const cookies = child.lines.filter((l) => /^\d+$/.test(l)).map((l) => BigInt(l));
    assert.equal(cookies.length, 4, "tcp and udp, v4 and v6");
    const owners = boundSocketOwners(new Attribution(), boundSockets());
    for (const cookie of cookies) {
      const o = owners.find((x) => x.cookie === cookie);
      assert.ok(o, `socket ${cookie} has an owner`);
      assert.equal(o.pid, child.proc.pid, `socket ${cookie}: the process that holds it`);
      assert.equal(o.comm, HOSTILE);
      assert.equal(o.uid, process.getuid?.());
      assert.ok(o.exeIno > 0n, "its executable's inode");
    }
  } finally {
    child.proc.stdin?.end();
    child.kill();
    await child.exited;
  }
});

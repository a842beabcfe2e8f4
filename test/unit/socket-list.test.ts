// The owners of sockets bound before moat attached come from `ss -Htulnpe`: each socket's cookie,
// cgroup and the pids that hold it (the lowest first); sockets no process holds are skipped.
import { test } from "node:test";
import assert from "node:assert/strict";
import { parseSocketList } from "../../src/attribution/listeners.ts";

test("ss -Htulnpe lines -> cookie, cgroup, pids", () => {
  const text = [
    `udp UNCONN 0      0      127.0.0.1:45672 0.0.0.0:* users:(("python3",pid=7353,fd=4)) ino:3445870 sk:88167 cgroup:/ <->`,
    `tcp LISTEN 0      128            *:45671       *:* users:(("nginx",pid=902,fd=6),("nginx",pid=901,fd=6),("nginx",pid=902,fd=7)) ino:3445869 sk:1a2b3c4d5e cgroup:/system.slice/nginx.service v6only:0 <->`,
    `tcp LISTEN 0      128      0.0.0.0:2024      0.0.0.0:*    ino:1681 sk:8738d cgroup:/ <->`,
    "",
  ].join("\n");
  assert.deepEqual(parseSocketList(text), [
    { cookie: 0x88167n, cgroup: "/", pids: [7353] },
    { cookie: 0x1a2b3c4d5en, cgroup: "/system.slice/nginx.service", pids: [901, 902] },
  ]);
});

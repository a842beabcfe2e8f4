// The ports tests give the servers they start (freePort): never one the kernel hands out as a
// connection's own port, so a connection made meanwhile cannot take a port a server is about to
// listen on (nats-server then exits with "address already in use"); and free when given.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createServer } from "node:net";
import { freePort } from "../helpers/ports.ts";

test("freePort gives a free port outside the kernel's range for connections' own ports", async () => {
  const [low, high] = readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8")
    .trim()
    .split(/\s+/)
    .map(Number);
  for (let i = 0; i < 50; i++) {
    const port = await freePort();
    assert.ok(port < low! || port > high!, `port ${port} is in ${low}-${high}`);
    assert.ok(port >= 1024, `port ${port} is a privileged one`);
    const s = createServer();
    await new Promise<void>((resolve, reject) => {
      s.once("error", reject);
      s.listen(port, "127.0.0.1", resolve);
    });
    await new Promise<void>((r) => s.close(() => r()));
  }
});

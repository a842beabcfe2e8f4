// A live subscriber's kernel send buffer holds its share of the byte budget: a client that pauses
// on the unix socket leaves its events with the kernel, not waiting in the daemon's buffer
// (where they counted against its budget whenever the daemon's loop was busy).
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer, type ServerResponse } from "node:http";
import { connect, createServer as createTcpServer, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { once } from "node:events";
import { SUBSCRIBER_LIMITS, SubscriberHub, type Channel } from "../../src/api/subscribers.ts";
import { subscribe } from "../../src/api/sse.ts";
import { sizeSendBuffer } from "../../src/api/send-buffer.ts";
import { fakeEvent } from "../helpers/events.ts";

const budget = SUBSCRIBER_LIMITS.sharedBufferedBytes ?? 0;

test("each subscriber's send buffer is sized to its share, again as others come and go", (t) => {
  const hub = new SubscriberHub(SUBSCRIBER_LIMITS);
  t.after(() => hub.close());
  const told: number[][] = [[], []];
  const channel = (i: number): Channel => ({
    framing: "sse",
    write: () => {},
    buffered: () => 0,
    keepalive: () => {},
    end: () => {},
    sendBuffer: (bytes) => void told[i]!.push(bytes),
  });
  hub.add({}, channel(0));
  const leave = hub.add({}, channel(1));
  leave();
  assert.deepEqual(told, [[budget, budget / 2, budget], [budget / 2]]);
});

test("a paused SSE client on a unix socket leaves more than the default buffer with the kernel", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "moat-sndbuf-"));
  const hub = new SubscriberHub(SUBSCRIBER_LIMITS);
  let answered!: (r: ServerResponse) => void;
  const response = new Promise<ServerResponse>((resolve) => (answered = resolve));
  const server = createServer((req, res) => {
    subscribe(req, res, {}, hub);
    answered(res);
  });
  const path = join(dir, "api.sock");
  server.listen(path);
  await once(server, "listening");
  const client = connect(path);
  t.after(() => {
    client.destroy();
    hub.close();
    server.close();
    rmSync(dir, { recursive: true, force: true });
  });
  client.pause();
  client.write("GET /v1/events/stream HTTP/1.1\r\nhost: moat\r\n\r\n");
  const res = await response;
  // half again the kernel's default (net.core.wmem_default), within what wmem_max lets it hold
  const wmem = (name: string) => Number(readFileSync(`/proc/sys/net/core/${name}`, "utf8"));
  const target = Math.min(budget, wmem("wmem_default") * 1.5, wmem("wmem_max") * 1.5);
  const batch = Array.from({ length: 100 }, () => fakeEvent());
  // a turn between writes: the response corks its socket for the rest of a turn
  while (res.socket!.bytesWritten < target) {
    void hub.write(batch);
    await new Promise((resolve) => setImmediate(resolve));
  }
  assert.equal(hub.fanout().dropped, 0);
  assert.equal(res.writableLength, 0, "the kernel took every byte the paused client left");
});

test("a TCP connection's send buffer is left to the kernel", async (t) => {
  const server = createTcpServer();
  t.after(() => server.close());
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as { port: number };
  const client = connect(port, "127.0.0.1");
  const [accepted] = (await once(server, "connection")) as [Socket];
  t.after(() => {
    client.destroy();
    accepted.destroy();
  });
  assert.equal(sizeSendBuffer(accepted, budget), 0);
});

// The relay's share of the daemon's descriptors: connections counted per owner uid (the kernel's
// record of each client), a user over its share or users together over theirs are reset at once,
// counted and logged once per interval; root keeps a share no other user's load can take. The
// limits derive from the process's RLIMIT_NOFILE.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createServer, type Socket } from "node:net";
import { parsePolicy } from "../../../src/config/index.ts";
import type { MoatEvent } from "../../../src/datapath/index.ts";
import { L7Relay } from "../../../src/l7/index.ts";
import { listenOnLoopback } from "../../helpers/ports.ts";
import { relayClient, type RelayClient } from "../../helpers/relay-client.ts";

const POLICY = parsePolicy(
  `version: 1
mode: prevent
attach: { cgroup: / }
defaults: { ingress: allow, egress: allow }
rules:
  - { name: web, direction: egress, action: allow, layer7: { http: {} } }
`,
  "p.yaml",
);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const GET = (path: string) => `GET ${path} HTTP/1.1\r\nHost: a\r\n\r\n`;

/** Who the kernel says owns a client, by the loopback address it connects from. */
const UID_OF: Record<string, number> = {
  "127.0.0.10": 0,
  "127.0.0.11": 1000,
  "127.0.0.12": 1001,
  "127.0.0.13": 1002,
};

test("one user's connections over its share are reset, counted and logged once; root's are still relayed", async (t) => {
  const up = await answeringUpstream();
  t.after(() => up.close());
  const events: MoatEvent[] = [];
  const logs: string[] = [];
  const relay = await L7Relay.open({
    original: (peer) => ({
      original: { ip: "127.0.0.1", port: up.port },
      protocol: "tcp",
      redirect: 0,
      generation: 1,
      target: { ip: "127.0.0.1", port: 1 },
      owner: { pid: 4242, uid: UID_OF[peer.ip] ?? 65534, cgroupId: 7n, comm: "curl" },
    }),
    process: () => ({ pid: 4242, name: "curl" }) as never,
    names: () => [],
    policy: () => POLICY,
    generation: () => 1,
    report: (e) => events.push(e),
    log: (line) => logs.push(line),
    headerTimeoutMs: 60_000,
    limits: { connections: 8, perUid: 3 },
    refusalLogMs: 50,
  });
  t.after(() => relay.close());
  const open: RelayClient[] = [];
  t.after(() => open.forEach((c) => c.socket.destroy()));
  const connectAs = async (ip: string) => {
    const c = relayClient(relay, ip);
    open.push(c);
    // connected, or already reset (then the connect itself may fail with ECONNRESET)
    await new Promise((r) => {
      c.socket.once("connect", r);
      c.socket.once("close", r);
    });
    return c;
  };
  const outcome = async (c: RelayClient) => {
    for (let i = 0; i < 300 && !c.socket.destroyed; i++) await sleep(10);
    return c.socket.destroyed ? (c.error() ?? "closed") : "open";
  };
  // uid 1000: five silent connections, its share is three
  const a = [];
  for (let i = 0; i < 5; i++) a.push(await connectAs("127.0.0.11"));
  // uid 1001: four, one over its share
  const b = [];
  for (let i = 0; i < 4; i++) b.push(await connectAs("127.0.0.12"));
  // uid 1002: one, but users other than root have six of the eight together
  const c = await connectAs("127.0.0.13");
  assert.deepEqual(await Promise.all([a[3]!, a[4]!, b[3]!, c].map(outcome)), [
    "ECONNRESET",
    "ECONNRESET",
    "ECONNRESET",
    "ECONNRESET",
  ]);
  // root: two more, both relayed
  for (let i = 0; i < 2; i++) {
    const r = await connectAs("127.0.0.10");
    r.socket.write(GET(`/root${i}`));
    assert.match(await r.until(/\r\n\r\nok/), /^HTTP\/1\.1 200 /);
  }
  for (const kept of [...a.slice(0, 3), ...b.slice(0, 3)])
    assert.equal(kept.socket.destroyed, false);
  assert.equal(relay.stats.overLimit, 4);
  for (let i = 0; i < 100 && !logs.some((l) => /reset 4 connections/.test(l)); i++) await sleep(10);
  const lines = logs.filter((l) => /over the relay's limits/.test(l));
  assert.equal(lines.length, 1, logs.join("\n"));
  assert.match(lines[0]!, /reset 4 connections over the relay's limits/);
  assert.match(lines[0]!, /uid 1000: 2/);
  // a closed connection gives its user's slot back
  a[0]!.socket.destroy();
  let again = "";
  for (let i = 0; i < 50 && !/^HTTP\/1\.1 200 /.test(again); i++) {
    const d = await connectAs("127.0.0.11");
    d.socket.write(GET("/again"));
    again = await d.until(/\r\n\r\nok/, 1000);
  }
  assert.match(again, /^HTTP\/1\.1 200 /);
});

/** An upstream that answers each request at once. */
async function answeringUpstream() {
  const sockets = new Set<Socket>();
  const server = createServer((s) => {
    sockets.add(s);
    s.on("error", () => {});
    s.on("close", () => sockets.delete(s));
    s.on("data", () => s.write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"));
  });
  const port = await listenOnLoopback(server);
  return {
    port,
    close: () => {
      sockets.forEach((s) => s.destroy());
      server.close();
    },
  };
}

test("the relay's limits leave a quarter of the descriptors to the rest of the daemon", async () => {
  const { FILES_PER_CONNECTION, openFileLimit, relayLimits } =
    await import("../../../src/l7/relay-limits.ts");
  for (const files of [1024, 20_000, 65_536, 262_144]) {
    const l = relayLimits(files);
    assert.ok(
      l.connections * FILES_PER_CONNECTION <= files - files / 4,
      `${files}: ${JSON.stringify(l)}`,
    );
    assert.ok(l.perUid > 0 && l.perUid < l.connections, `${files}: ${JSON.stringify(l)}`);
  }
  // the soft limit, as the kernel states it for this process
  const line = readFileSync("/proc/self/limits", "utf8")
    .split("\n")
    .find((l) => l.startsWith("Max open files"));
  assert.equal(openFileLimit(), Number(/\d+/.exec(line ?? "")?.[0]));
});

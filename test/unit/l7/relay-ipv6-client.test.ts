// An IPv6 client at the relay: the kernel sends an IPv6 socket to the relay's IPv4 address as
// `::ffff:127.0.0.1`, so the relay's socket sees it as 127.0.0.1. Such a client's request to an
// IPv6 server is judged as one over IPv6 (allowed and blocked by its rules, as over IPv4), and
// its events name the client in IPv6 as its own socket has it.
import { test } from "node:test";
import assert from "node:assert/strict";
import { connect, createServer, type Server } from "node:net";
import { parsePolicy } from "../../../src/config/index.ts";
import type { MoatEvent } from "../../../src/datapath/index.ts";
import { L7Relay } from "../../../src/l7/index.ts";

const POLICY = parsePolicy(
  `version: 1
mode: prevent
attach: { cgroup: / }
rules:
  - { name: web-get, direction: egress, action: allow, log: true, layer4: { protocol: tcp }, layer7: { http: { method: [GET] } } }
  - { name: other-http, direction: egress, action: block, layer4: { protocol: tcp }, layer7: { http: {} } }
`,
  "p.yaml",
);

/** An HTTP server on ::1 answering every request with "ok". */
async function ipv6Server(): Promise<{ server: Server; port: number }> {
  const server = createServer((s) =>
    s.once("data", () =>
      s.end("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"),
    ),
  );
  await new Promise<void>((r) => server.listen(0, "::1", r));
  return { server, port: (server.address() as { port: number }).port };
}

/** The relay, every client taken as redirected from [::1]:`port`. */
async function relayTo(port: number) {
  const events: MoatEvent[] = [];
  const logs: string[] = [];
  const relay = await L7Relay.open({
    original: () => ({
      original: { ip: "::1", port },
      protocol: "tcp",
      redirect: 0,
      generation: 1,
      target: { ip: "127.0.0.1", port: 1 },
      owner: { pid: 4242, uid: 1000, cgroupId: 7n, comm: "curl" },
    }),
    process: () => ({ pid: 4242, name: "curl" }) as never,
    names: () => [],
    policy: () => POLICY,
    generation: () => 1,
    report: (e) => events.push(e),
    log: (line) => logs.push(line),
  });
  return { relay, events, logs };
}

/** An IPv6 socket's request to the relay's IPv4 address, as the kernel redirects it. */
function request(relay: L7Relay, method: string): Promise<{ answer: string; local: string }> {
  const at = relay.addressFor(4)!;
  const s = connect({ host: `::ffff:${at.ip}`, port: at.port, family: 6 });
  let answer = "";
  let local = "";
  s.setEncoding("utf8").on("data", (d: string) => (answer += d));
  s.on("connect", () => {
    local = s.localAddress ?? "";
    s.write(`${method} / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
  });
  return new Promise((resolve, reject) => {
    s.once("error", reject);
    s.once("close", () => resolve({ answer, local }));
  });
}

test("an IPv6 client's GET is allowed by its rule; the event names it in IPv6", async (t) => {
  const up = await ipv6Server();
  const { relay, events, logs } = await relayTo(up.port);
  t.after(() => {
    relay.close();
    up.server.close();
  });
  const r = await request(relay, "GET");
  assert.match(r.answer, /^HTTP\/1\.1 200 OK[\s\S]*ok$/, logs.join("\n"));
  while (events.length === 0) await new Promise((done) => setTimeout(done, 20));
  const e = events[0]!;
  assert.deepEqual(
    [e.type, e.rule, e.remote.ip, e.local.ip],
    ["allowed", "web-get", "::1", r.local],
  );
  assert.equal(r.local, "::ffff:127.0.0.1");
});

test("an IPv6 client's POST is blocked by its rule with moat's 403, and reported", async (t) => {
  const up = await ipv6Server();
  const { relay, events, logs } = await relayTo(up.port);
  t.after(() => {
    relay.close();
    up.server.close();
  });
  const r = await request(relay, "POST");
  assert.match(
    r.answer,
    /^HTTP\/1\.1 403 [\s\S]*moat: blocked by rule other-http\n/,
    logs.join("\n"),
  );
  while (events.length === 0) await new Promise((done) => setTimeout(done, 20));
  const e = events[0]!;
  assert.deepEqual(
    [e.type, e.rule, e.remote.ip, e.local.ip],
    ["blocked", "other-http", "::1", r.local],
  );
});

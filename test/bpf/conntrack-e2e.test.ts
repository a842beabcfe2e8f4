// Connection tracking with real traffic: two namespaces joined by veth, moat on b's interface.
// A TCP connection past its rule's max_duration is reset at both ends, and nothing sent after
// the deadline reaches the other side, whether b's ingress is judged at XDP or at tc.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createLab } from "../helpers/netns.ts";
import { spawnLines } from "../helpers/child.ts";
import { inNamespace, NODE, ROOT } from "../helpers/paths.ts";

/** The harness loads and verifies moat's programs first: seconds, more on a busy machine. */
const HARNESS_READY_MS = 60_000;

const SERVER = `
const net = require("node:net");
net.createServer((s) => {
  s.on("data", (d) => { console.log("server got " + String(d).trim()); s.write(d); });
  s.on("error", (e) => console.log("server error " + e.code));
  s.on("close", () => console.log("server closed"));
}).listen(8080, () => console.log("listening"));
`;

const CLIENT = (host: string) => `
const s = require("node:net").connect(8080, "${host}", () => {
  s.write("hello\\n");
  setTimeout(() => s.write("too late\\n"), 2500);
});
s.on("data", (d) => console.log("client got " + String(d).trim()));
s.on("error", (e) => console.log("client error " + e.code));
s.on("close", () => console.log("client closed"));
`;

for (const ingress of ["xdp", "tc"] as const)
  test(
    `a tcp connection past max_duration is reset at both ends, with real traffic (ingress at ${ingress})`,
    { timeout: 120_000 },
    async (t) => {
      const lab = createLab(t.name);
      const dir = mkdtempSync(join(tmpdir(), "moat-maxdur-"));
      const policy = join(dir, "policy.yaml");
      writeFileSync(
        policy,
        `version: 1
mode: prevent
defaults: { ingress: block, egress: allow }
rules:
  - name: short
    direction: ingress
    action: allow
    log: true
    layer4: { protocol: tcp, port: [8080], max_duration: 2s }
  - name: neighbours
    direction: ingress
    action: allow
    layer4: { protocol: icmpv6 }
`,
      );
      const harness = spawnLines(
        ...inNamespace(lab.b, `${ROOT}test/helpers/datapath-harness.ts`, [
          lab.ifB,
          policy,
          ingress,
        ]),
      );
      const server = spawnLines("ip", ["netns", "exec", lab.b, NODE, "-e", SERVER]);
      try {
        const ready = await harness.waitFor(/^ready /, HARNESS_READY_MS);
        assert.match(ready, new RegExp(`"hook":"${ingress === "tc" ? "tc-ingress" : "xdp"}"`));
        await server.waitFor(/^listening$/);
        const client = spawnLines("ip", ["netns", "exec", lab.a, NODE, "-e", CLIENT(lab.v4.b)]);
        await client.waitFor(/^client got hello$/);
        await client.waitFor(/^client error ECONNRESET$/, 10_000);
        await server.waitFor(/^server error ECONNRESET$/, 10_000);
        assert.ok(!server.lines.includes("server got too late"), "nothing after the deadline");
        const closed = await harness.waitFor(/^event .* CLOSED ingress tcp /);
        assert.match(closed, /by rule short \(max duration, \d+ packets/);
        harness.send("counters");
        const counters = JSON.parse((await harness.waitFor(/^counters /)).slice(9)) as Record<
          string,
          number
        >;
        assert.ok((counters.cut ?? 0) >= 1 && (counters.reset ?? 0) >= 1, JSON.stringify(counters));
        client.kill();
      } finally {
        harness.kill();
        server.kill();
        lab.cleanup();
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );

test(
  "a connection the host opened survives the loss of its conntrack entry: its local socket is established",
  { timeout: 120_000 },
  async (t) => {
    const lab = createLab(t.name);
    const dir = mkdtempSync(join(tmpdir(), "moat-midstream-"));
    const policy = join(dir, "policy.yaml");
    writeFileSync(
      policy,
      `version: 1
mode: prevent
defaults: { ingress: block, egress: allow }
rules:
  - name: neighbours
    direction: ingress
    action: allow
    layer4: { protocol: icmpv6 }
`,
    );
    const traffic = `${ROOT}test/helpers/traffic.ts`;
    const harness = spawnLines(
      ...inNamespace(lab.b, `${ROOT}test/helpers/datapath-harness.ts`, [lab.ifB, policy]),
    );
    const feed = spawnLines("ip", ["netns", "exec", lab.a, NODE, traffic, "feed", "7070"]);
    let follow: ReturnType<typeof spawnLines> | undefined;
    try {
      await harness.waitFor(/^ready /, HARNESS_READY_MS);
      await feed.waitFor(/^listening$/);
      follow = spawnLines("ip", [
        "netns",
        "exec",
        lab.b,
        NODE,
        traffic,
        "follow",
        lab.v4.a,
        "7070",
      ]);
      const bytes = () =>
        Number(follow?.lines.findLast((l) => l.startsWith("bytes "))?.slice(6) ?? 0);
      const grows = async (what: string) => {
        const from = bytes();
        for (let i = 0; i < 60 && bytes() <= from; i++) await new Promise((r) => setTimeout(r, 50));
        assert.ok(bytes() > from, `${what}: no byte arrived in 3 s (stuck at ${from})`);
      };
      await grows("before");
      // the peer's next packet is mid-stream data with no entry: ingress, which the policy blocks
      for (let i = 0; i < 5; i++) {
        harness.send("forget");
        await harness.waitFor(/^forgot \d+$/);
        await grows(`after the table was cleared (${i + 1})`);
      }
      assert.equal(
        follow.lines.find((l) => l.startsWith("closed ")),
        undefined,
        "never closed",
      );
    } finally {
      follow?.kill();
      feed.kill();
      harness.kill();
      lab.cleanup();
      rmSync(dir, { recursive: true, force: true });
    }
  },
);

test(
  "a udp flow the host opened survives the loss of its conntrack entry: its local socket is connected to the peer",
  { timeout: 120_000 },
  async (t) => {
    const lab = createLab(t.name);
    const dir = mkdtempSync(join(tmpdir(), "moat-udp-lost-"));
    const policy = join(dir, "policy.yaml");
    writeFileSync(
      policy,
      `version: 1
mode: prevent
defaults: { ingress: block, egress: allow }
rules:
  - name: neighbours
    direction: ingress
    action: allow
    layer4: { protocol: icmpv6 }
`,
    );
    const traffic = `${ROOT}test/helpers/traffic.ts`;
    const harness = spawnLines(
      ...inNamespace(lab.b, `${ROOT}test/helpers/datapath-harness.ts`, [lab.ifB, policy]),
    );
    const feed = spawnLines("ip", ["netns", "exec", lab.a, NODE, traffic, "feed-udp", "7071"]);
    let follow: ReturnType<typeof spawnLines> | undefined;
    let bound: ReturnType<typeof spawnLines> | undefined;
    let sender: ReturnType<typeof spawnLines> | undefined;
    try {
      await harness.waitFor(/^ready /, HARNESS_READY_MS);
      await feed.waitFor(/^listening$/);
      follow = spawnLines("ip", [
        "netns",
        "exec",
        lab.b,
        NODE,
        traffic,
        "follow-udp",
        lab.v4.a,
        "7071",
      ]);
      const bytes = () =>
        Number(follow?.lines.findLast((l) => l.startsWith("bytes "))?.slice(6) ?? 0);
      const grows = async (what: string) => {
        const from = bytes();
        for (let i = 0; i < 60 && bytes() <= from; i++) await new Promise((r) => setTimeout(r, 50));
        assert.ok(bytes() > from, `${what}: no datagram arrived in 3 s (stuck at ${from})`);
      };
      await grows("before");
      // the client sends nothing more: the peer's next datagram has no entry and is ingress,
      // which the policy blocks unless the connected socket is found
      for (let i = 0; i < 5; i++) {
        harness.send("forget");
        await harness.waitFor(/^forgot \d+$/);
        await grows(`after the table was cleared (${i + 1})`);
      }
      // a socket that is only bound (a server) opens nothing: new datagrams to it stay blocked
      bound = spawnLines("ip", ["netns", "exec", lab.b, NODE, traffic, "count-udp", "7072"]);
      await bound.waitFor(/^listening$/);
      sender = spawnLines("ip", [
        "netns",
        "exec",
        lab.a,
        NODE,
        traffic,
        "send-udp",
        lab.v4.b,
        "7072",
      ]);
      await bound.waitFor(/^bytes 0$/);
      await new Promise((r) => setTimeout(r, 1000));
      assert.equal(
        bound.lines.findLast((l) => l.startsWith("bytes ")),
        "bytes 0",
      );
    } finally {
      sender?.kill();
      bound?.kill();
      follow?.kill();
      feed.kill();
      harness.kill();
      lab.cleanup();
      rmSync(dir, { recursive: true, force: true });
    }
  },
);

// Who opened a connection, with real traffic: two namespaces joined by veth, moat on b's interface
// (prevent, both defaults block). A connection b's server accepted stays its peer's when its
// entry is lost and the server sends first; a peer's syn that ingress blocked does not stop b's
// own connection on the same ports. IPv4 and IPv6.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createLab, sh, type Lab } from "../helpers/netns.ts";
import { spawnLines, type LineChild } from "../helpers/child.ts";
import { inNamespace, NODE, ROOT } from "../helpers/paths.ts";

/** The harness loads and verifies moat's programs first: seconds, more on a busy machine. */
const HARNESS_READY_MS = 60_000;

const PUSH_PORT = 9070;
const OUT_PORTS = [7011, 7012];

const POLICY = `version: 1
mode: prevent
defaults: { ingress: block, egress: block }
rules:
  - name: pushed
    direction: ingress
    action: allow
    log: true
    layer4: { protocol: tcp, port: [${PUSH_PORT}] }
  - name: out
    direction: egress
    action: allow
    log: true
    layer4: { protocol: tcp, port: [${OUT_PORTS.join(", ")}] }
  - name: neighbours-in
    direction: ingress
    action: allow
    layer4: { protocol: icmpv6 }
  - name: neighbours-out
    direction: egress
    action: allow
    layer4: { protocol: icmpv6 }
`;

/** moat's datapath on b's interface under POLICY, run by `body`; everything removed after. */
async function withMoat(
  name: string,
  body: (
    lab: Lab,
    harness: LineChild,
    run: (ns: string, script: string) => LineChild,
  ) => Promise<void>,
): Promise<void> {
  const lab = createLab(name);
  const dir = mkdtempSync(join(tmpdir(), "moat-opener-"));
  const policy = join(dir, "policy.yaml");
  writeFileSync(policy, POLICY);
  const children: LineChild[] = [];
  const run = (ns: string, script: string) => {
    const child = spawnLines("ip", ["netns", "exec", ns, NODE, "-e", script]);
    children.push(child);
    return child;
  };
  const harness = spawnLines(
    ...inNamespace(lab.b, `${ROOT}test/helpers/datapath-harness.ts`, [lab.ifB, policy]),
  );
  try {
    await harness.waitFor(/^ready /, HARNESS_READY_MS);
    await body(lab, harness, run);
  } finally {
    for (const child of children) child.kill();
    harness.kill();
    lab.cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
}

test(
  "an accepted connection whose server sends first survives the loss of its conntrack entry, as its peer's",
  { timeout: 120_000 },
  () =>
    withMoat("accepted server sends first", async (lab, harness) => {
      const traffic = `${ROOT}test/helpers/traffic.ts`;
      const feed = spawnLines("ip", [
        "netns",
        "exec",
        lab.b,
        NODE,
        traffic,
        "feed",
        String(PUSH_PORT),
      ]);
      let followers: LineChild[] = [];
      try {
        await feed.waitFor(/^listening$/);
        followers = [lab.v4.b, lab.v6.b].map((host) =>
          spawnLines("ip", ["netns", "exec", lab.a, NODE, traffic, "follow", host, `${PUSH_PORT}`]),
        );
        const bytes = (follow: LineChild) =>
          Number(follow.lines.findLast((l) => l.startsWith("bytes "))?.slice(6) ?? 0);
        const grow = async (what: string) => {
          for (const [i, follow] of followers.entries()) {
            const from = bytes(follow);
            for (let n = 0; n < 60 && bytes(follow) <= from; n++)
              await new Promise((r) => setTimeout(r, 50));
            const family = i ? "IPv6" : "IPv4";
            assert.ok(
              bytes(follow) > from,
              `${family} ${what}: no byte arrived (stuck at ${from})`,
            );
          }
        };
        await grow("before");
        // the server writes every 10 ms, the client only acks: the next packet with no entry is
        // mostly the server's, egress, which the default blocks
        for (let i = 0; i < 5; i++) {
          harness.send("forget");
          await harness.waitFor(/^forgot \d+$/);
          await grow(`after the table was cleared (${i + 1})`);
        }
        for (const follow of followers)
          assert.equal(
            follow.lines.find((l) => l.startsWith("closed ")),
            undefined,
            "never closed",
          );
        const events = harness.lines.filter((l) => l.startsWith("event "));
        assert.deepEqual(
          events.filter((l) => / BLOCKED /.test(l)),
          [],
          "nothing of the connections blocked",
        );
        for (const host of [lab.v4.b, `[${lab.v6.b}]`])
          assert.ok(
            events.some(
              (l) =>
                l.includes(` ALLOWED ingress tcp `) &&
                l.includes(`-> ${host}:${PUSH_PORT} `) &&
                l.endsWith(" by rule pushed"),
            ),
            `the connection to ${host} judged by the ingress rule:\n${events.join("\n")}`,
          );
      } finally {
        for (const follow of followers) follow.kill();
        feed.kill();
      }
    }),
);

/** Connects once from port `local` to host:port: "connected", or "error CODE". */
const CONNECT = (host: string, port: number, local: number) => `
const s = require("node:net").connect({ host: "${host}", port: ${port}, localPort: ${local} });
s.on("connect", () => { console.log("connected"); s.destroy(); });
s.on("error", (e) => console.log("error " + e.code));
`;

/** A listener on the port that closes each connection it accepts. */
const LISTEN = (port: number) => `
require("node:net").createServer((s) => s.end()).listen(${port}, () => console.log("listening"));
`;

test(
  "a peer's syn that ingress blocked does not stop this host's own connection on the same ports",
  { timeout: 120_000 },
  () =>
    withMoat("peer syn blocked then own connect", async (lab, harness, run) => {
      // a connect that fails does so after two retries (7 s), not the default six (2 min)
      sh("ip", ["netns", "exec", lab.b, "sysctl", "-qw", "net.ipv4.tcp_syn_retries=2"]);
      const families: [peer: string, own: string][] = [
        [lab.v4.a, lab.v4.b],
        [lab.v6.a, lab.v6.b],
      ];
      for (const [i, [a, b]] of families.entries()) {
        const peerPort = OUT_PORTS[i]!;
        const localPort = 45001 + i;
        const shown = (ip: string) => (ip.includes(":") ? `[${ip}]` : ip);
        // the peer's syn from its port to b's: no ingress rule allows it
        const peer = run(lab.a, CONNECT(b, localPort, peerPort));
        await harness.waitFor(
          new RegExp(
            `^event .* BLOCKED ingress tcp ${escape(`${shown(a)}:${peerPort} -> ${shown(b)}:${localPort} `)}`,
          ),
        );
        peer.kill(); // its socket closes without a word: the syn was all it sent
        await peer.exited;
        await run(lab.a, LISTEN(peerPort)).waitFor(/^listening$/);
        // b connects from that port to the peer's, which the egress rule allows
        const own = run(lab.b, CONNECT(a, peerPort, localPort));
        assert.equal(await own.waitFor(/^(connected|error)/, 30_000), "connected", shown(a));
      }
    }),
);

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

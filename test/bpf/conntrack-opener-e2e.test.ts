// Who opened a connection, with real traffic: two namespaces joined by veth, moat on b's interface
// (prevent, both defaults block). A connection b's server accepted stays its peer's when its
// entry is lost and the server sends first; a peer's syn that ingress blocked does not stop b's
// own connection on the same ports. IPv4 and IPv6.
import { test } from "node:test";
import assert from "node:assert/strict";
import { sh } from "../helpers/netns.ts";
import type { LineChild } from "../helpers/child.ts";
import { blockAllBut, withDatapathLab } from "../helpers/datapath-lab.ts";
import { ROOT } from "../helpers/paths.ts";

const PUSH_PORT = 9070;
const OUT_PORTS = [7011, 7012];

const POLICY = blockAllBut(`  - name: pushed
    direction: ingress
    action: allow
    log: true
    layer4: { protocol: tcp, port: [${PUSH_PORT}] }
  - name: out
    direction: egress
    action: allow
    log: true
    layer4: { protocol: tcp, port: [${OUT_PORTS.join(", ")}] }
`);

test(
  "an accepted connection whose server sends first survives the loss of its conntrack entry, as its peer's",
  { timeout: 120_000 },
  () =>
    withDatapathLab("accepted server sends first", POLICY, async (lab) => {
      const traffic = `${ROOT}test/helpers/traffic.ts`;
      await lab.node(lab.b, traffic, "feed", String(PUSH_PORT)).waitFor(/^listening$/);
      const followers = [lab.v4.b, lab.v6.b].map((host) =>
        lab.node(lab.a, traffic, "follow", host, `${PUSH_PORT}`),
      );
      const bytes = (follow: LineChild) =>
        Number(follow.lines.findLast((l) => l.startsWith("bytes "))?.slice(6) ?? 0);
      const grow = async (what: string) => {
        for (const [i, follow] of followers.entries()) {
          const from = bytes(follow);
          for (let n = 0; n < 60 && bytes(follow) <= from; n++)
            await new Promise((r) => setTimeout(r, 50));
          const family = i ? "IPv6" : "IPv4";
          assert.ok(bytes(follow) > from, `${family} ${what}: no byte arrived (stuck at ${from})`);
        }
      };
      await grow("before");
      // the server writes every 10 ms, the client only acks: the next packet with no entry is
      // mostly the server's, egress, which the default blocks
      for (let i = 0; i < 5; i++) {
        lab.harness.send("forget");
        await lab.harness.waitFor(/^forgot \d+$/);
        await grow(`after the table was cleared (${i + 1})`);
      }
      for (const follow of followers)
        assert.equal(
          follow.lines.find((l) => l.startsWith("closed ")),
          undefined,
          "never closed",
        );
      const events = lab.harness.lines.filter((l) => l.startsWith("event "));
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
    withDatapathLab("peer syn blocked then own connect", POLICY, async (lab) => {
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
        const peer = lab.node(lab.a, "-e", CONNECT(b, localPort, peerPort));
        await lab.harness.waitFor(
          new RegExp(
            `^event .* BLOCKED ingress tcp ${escape(`${shown(a)}:${peerPort} -> ${shown(b)}:${localPort} `)}`,
          ),
        );
        peer.kill(); // its socket closes without a word: the syn was all it sent
        await peer.exited;
        await lab.node(lab.a, "-e", LISTEN(peerPort)).waitFor(/^listening$/);
        // b connects from that port to the peer's, which the egress rule allows
        const own = lab.node(lab.b, "-e", CONNECT(a, peerPort, localPort));
        assert.equal(await own.waitFor(/^(connected|error)/, 30_000), "connected", shown(a));
      }
    }),
);

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

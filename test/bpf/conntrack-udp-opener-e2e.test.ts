// Who opened a UDP flow, with real traffic: two namespaces joined by veth, moat on b's interface
// (prevent, both defaults block). A datagram the policy blocked from the flow's start reached no
// one: the other side's datagram on the same ports opens the flow anew, judged by the policy. A
// server whose entry is lost and that sends before its peer is not cut from the peer the ingress
// rules let in; a peer's blocked datagram does not stop this host's own flow to it. IPv4 and IPv6.
import { test } from "node:test";
import assert from "node:assert/strict";
import type { LineChild } from "../helpers/child.ts";
import { blockAllBut, withDatapathLab } from "../helpers/datapath-lab.ts";

/** How long a datagram that passes may take to be printed by its receiver. */
const ARRIVAL_MS = 5_000;

const SERVER_PORT = 9180;
const PEER_PORT = 9181;

/** The peer's datagrams to b's server port are let in. */
const SERVED = blockAllBut(`  - name: served
    direction: ingress
    action: allow
    log: true
    layer4: { protocol: udp, port: [${SERVER_PORT}] }
`);

/** b's datagrams to the peer's port are let out. */
const OUTBOUND = blockAllBut(`  - name: outbound
    direction: egress
    action: allow
    log: true
    layer4: { protocol: udp, port: [${PEER_PORT}] }
`);

/** A udp socket bound to host:port (connected to no one): prints "got TEXT" for each datagram,
 * sends "TEXT" for each stdin line "HOST PORT TEXT". */
const ENDPOINT = (host: string, port: number) => `
const s = require("node:dgram").createSocket("${host.includes(":") ? "udp6" : "udp4"}");
s.on("message", (m) => console.log("got " + m));
s.bind(${port}, "${host}", () => console.log("bound"));
require("node:readline").createInterface({ input: process.stdin }).on("line", (l) => {
  const [host, port, text] = l.split(" ");
  s.send(text, Number(port), host);
});
`;

interface Pair {
  family: string;
  /** b's socket on SERVER_PORT and a's on PEER_PORT */
  server: LineChild;
  peer: LineChild;
  /** the flow as the events show it, from b's side and from a's */
  fromServer: string;
  fromPeer: string;
  toPeer: (text: string) => void;
  toServer: (text: string) => void;
}

/** moat's datapath on b's interface under `policy`, with a udp endpoint pair per family. */
function withPairs(
  name: string,
  policy: string,
  body: (harness: LineChild, pairs: Pair[]) => Promise<void>,
): Promise<void> {
  return withDatapathLab(name, policy, async (lab) => {
    const pairs: Pair[] = [];
    for (const [family, a, b] of [
      ["IPv4", lab.v4.a, lab.v4.b],
      ["IPv6", lab.v6.a, lab.v6.b],
    ] as const) {
      const server = lab.node(lab.b, "-e", ENDPOINT(b, SERVER_PORT));
      const peer = lab.node(lab.a, "-e", ENDPOINT(a, PEER_PORT));
      await server.waitFor(/^bound$/);
      await peer.waitFor(/^bound$/);
      const shown = (ip: string) => (ip.includes(":") ? `[${ip}]` : ip);
      pairs.push({
        family,
        server,
        peer,
        fromServer: `${shown(b)}:${SERVER_PORT} -> ${shown(a)}:${PEER_PORT} `,
        fromPeer: `${shown(a)}:${PEER_PORT} -> ${shown(b)}:${SERVER_PORT} `,
        toPeer: (text) => server.send(`${a} ${PEER_PORT} ${text}`),
        toServer: (text) => peer.send(`${b} ${SERVER_PORT} ${text}`),
      });
    }
    await body(lab.harness, pairs);
  });
}

/** The harness's next event line about a blocked datagram of the flow, as `flow` shows it. */
const blockedEvent = (harness: LineChild, dir: string, flow: string) =>
  harness.waitFor(new RegExp(`^event .* BLOCKED ${dir} udp ${escape(flow)}`), ARRIVAL_MS);

/** Waits for `receiver` to print "got TEXT"; fails with `failure` when it does not in time. */
const arrives = (receiver: LineChild, text: string, failure: string) =>
  receiver.waitFor(new RegExp(`^got ${text}$`), ARRIVAL_MS).catch(() => assert.fail(failure));

test(
  "a udp server whose entry is lost and that sends first is not cut from the peer the ingress rules let in",
  { timeout: 180_000 },
  () =>
    withPairs("udp server sends first", SERVED, async (harness, pairs) => {
      for (const p of pairs) {
        p.toServer("hello");
        await p.server.waitFor(/^got hello$/, ARRIVAL_MS);
        p.toPeer("welcome");
        await p.peer.waitFor(/^got welcome$/, ARRIVAL_MS);
      }
      harness.send("forget"); // as a restart with an empty table, or an lru eviction, would
      await harness.waitFor(/^forgot \d+$/);
      for (const p of pairs) {
        // the server's keepalive is the first datagram with no entry: egress, blocked
        p.toPeer("keepalive");
        await blockedEvent(harness, "egress", p.fromServer);
        p.toServer("again");
        await arrives(
          p.server,
          "again",
          `${p.family}: the peer's datagram after the server's blocked one was dropped`,
        );
        p.toPeer("answer");
        await arrives(p.peer, "answer", `${p.family}: the server's answer to its peer was dropped`);
        assert.equal(p.peer.lines.includes("got keepalive"), false, "the blocked one stayed out");
      }
    }),
);

test(
  "a peer's udp datagram that ingress blocked does not stop this host's own flow to it",
  { timeout: 180_000 },
  () =>
    withPairs("peer udp blocked then own send", OUTBOUND, async (harness, pairs) => {
      for (const p of pairs) {
        p.toServer("knock");
        await blockedEvent(harness, "ingress", p.fromPeer);
        // b's socket on the same ports sends to the peer, which the egress rule allows
        p.toPeer("own");
        await arrives(
          p.peer,
          "own",
          `${p.family}: this host's datagram after the peer's blocked one was dropped`,
        );
        p.toServer("reply");
        await arrives(
          p.server,
          "reply",
          `${p.family}: the peer's reply to this host's flow was dropped`,
        );
        assert.equal(p.server.lines.includes("got knock"), false, "the blocked one stayed out");
      }
    }),
);

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

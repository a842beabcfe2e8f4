// The rings the daemon reads reach their readers on the event loop, with no drain asked: the
// packet programs wake a ring's reader at most once in half a millisecond, so records sent close
// together (a burst, or a record right after the reader caught up) are read by its next look.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { setImmediate as turn } from "node:timers/promises";
import { KernelLab } from "../helpers/kernel-lab.ts";
import { inboundTcpFlow } from "../helpers/inbound-tcp-flow.ts";
import { decodeIdsCopy, type IdsCopy } from "../../src/datapath/index.ts";

const POLICY = `
version: 1
mode: prevent
defaults: { ingress: allow, egress: allow }
rules:
  - name: no-81
    direction: ingress
    action: block
    layer4: { protocol: tcp, port: [81] }
ids:
  rules: ['alert tcp any any -> any 80 (msg:"admin"; content:"/admin"; sid:1;)']
`;
const REQUEST = Buffer.from("GET /admin HTTP/1.1\r\n\r\n");

let lab: KernelLab;
const copies: IdsCopy[] = [];
before(() => {
  lab = new KernelLab();
  lab.dp.subscribeIds((r) => copies.push(decodeIdsCopy(r)));
  lab.policy(POLICY);
});
after(() => lab.close());

/** Sends `n` flows' requests back to back (each flow's one copy); returns their source ports. */
function requests(n: number): number[] {
  const ports: number[] = [];
  for (let i = 0; i < n; i++) {
    const f = inboundTcpFlow();
    assert.equal(lab.run("xdp", f.client("S", 1000)).verdict, "pass");
    assert.equal(lab.run("xdp", f.client("PA", 1001, REQUEST)).verdict, "pass");
    ports.push(f.sport);
  }
  return ports;
}

/** Sends `n` SYNs to the blocked port (each one event); returns their source ports. */
function blocked(n: number): number[] {
  const ports: number[] = [];
  for (let i = 0; i < n; i++) {
    const f = inboundTcpFlow();
    assert.equal(lab.run("xdp", { ...f.client("S", 1000), dport: 81 }).verdict, "drop");
    ports.push(f.sport);
  }
  return ports;
}

/** How many of `ports` `seen` holds, waiting up to 5 s for them all (loop turn by loop turn: the
 * next records go out as soon as these are read, within the programs' wake limit). */
async function readOf(ports: number[], seen: () => number[]): Promise<number> {
  const of = () => seen().filter((port) => ports.includes(port)).length;
  const until = Date.now() + 5000;
  while (of() < ports.length && Date.now() < until) await turn();
  return of();
}

const copyPorts = () => copies.map((c) => c.remote.port);
const eventPorts = () => lab.delivered().map((e) => e.remote.port);

for (const [what, send, seen] of [
  ["ids copies", requests, copyPorts],
  ["events", blocked, eventPorts],
] as const) {
  test(`a burst of ${what} is read whole without a drain`, async () => {
    const ports = send(20);
    assert.equal(await readOf(ports, seen), 20);
  });

  test(`${what} sent right after the reader caught up are read too`, async () => {
    for (let round = 0; round < 10; round++) {
      const ports = send(1 + (round % 3));
      assert.equal(await readOf(ports, seen), ports.length, `round ${round}`);
      // a poll of the loop that finds the ring empty (its readiness gone), then the next round
      await turn();
      await turn();
    }
  });
}

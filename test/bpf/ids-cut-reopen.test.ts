// A connection an ids cut blocked (docs/policy.md, "ids": prevent acts after the fact) stays
// blocked while its entry lives: neither its peers' resets and fins (dropped, they close nothing)
// nor a bare syn on its ports opens it again. A forwarded connection (no local socket), through
// BPF_PROG_TEST_RUN.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { KernelLab } from "../helpers/kernel-lab.ts";
import { tcpEnds } from "../helpers/packets.ts";
import type { ConntrackEntry } from "../../src/datapath/conntrack.ts";
import { cutIdsConnection } from "../../src/datapath/ids-cut.ts";
import type { IdsCopy } from "../../src/datapath/ids-record.ts";

const H = "10.0.0.1";
const P = "198.51.100.1";

const POLICY = `
version: 1
mode: prevent
defaults: { ingress: block, egress: allow }
rules:
  - name: ssh
    direction: ingress
    action: allow
    layer4: { protocol: tcp, port: [22] }
`;

let lab: KernelLab;
before(() => (lab = KernelLab.withPolicy(POLICY)));
after(() => lab.close());

/** From P:sport to H:22 (xdp), and back (tc). */
const { peer, host } = tcpEnds(P, H, 22);

function entry(sport: number): ConntrackEntry {
  const found = [...lab.dp.conntrack()].find((e) => e.remote.port === sport);
  assert.ok(found, "conntrack entry");
  return found;
}

/** Opens the connection (handshake, some data), then cuts it as the daemon does on an ids match. */
function openAndCut(sport: number): void {
  assert.equal(lab.run("xdp", peer(sport, "S", { seq: 1000 })).verdict, "pass");
  assert.equal(lab.run("tc", host(sport, "SA", { seq: 5000, ack: 1001 })).verdict, "pass");
  assert.equal(lab.run("xdp", peer(sport, "A", { seq: 1001, ack: 5001 })).verdict, "pass");
  assert.equal(
    lab.run("xdp", peer(sport, "PA", { seq: 1001, ack: 5001, payload: 10 })).verdict,
    "pass",
  );
  const e = entry(sport);
  const copy: Pick<IdsCopy, "connId" | "family" | "protocol" | "local" | "remote" | "ifindex"> = {
    connId: e.id,
    family: e.family,
    protocol: "tcp",
    local: e.local,
    remote: e.remote,
    ifindex: e.ifindex,
  };
  const cut = cutIdsConnection(lab.dp.conntrackMap, copy as IdsCopy, { sockDestroy: () => false });
  assert.deepEqual(cut, { blocked: true, destroyed: false });
  assert.equal(
    lab.run("xdp", peer(sport, "PA", { seq: 1011, ack: 5001, payload: 10 })).verdict,
    "drop",
    "cut",
  );
}

test("the peer's in-sequence reset, then a bare syn: the cut connection stays blocked", () => {
  const sport = 41800;
  openAndCut(sport);
  assert.equal(lab.run("xdp", peer(sport, "R", { seq: 1011 })).verdict, "drop", "reset");
  assert.equal(lab.run("xdp", peer(sport, "S", { seq: 1011 })).verdict, "drop", "syn");
  assert.equal(
    lab.run("xdp", peer(sport, "PA", { seq: 1011, ack: 5001, payload: 100 })).verdict,
    "drop",
    "the cut connection's data",
  );
  assert.equal(
    lab.run("tc", host(sport, "PA", { seq: 5001, ack: 1111, payload: 100 })).verdict,
    "drop",
    "its other end's data",
  );
});

test("fins both ways, then a bare syn: the cut connection stays blocked", () => {
  const sport = 41810;
  openAndCut(sport);
  assert.equal(lab.run("xdp", peer(sport, "FA", { seq: 1011, ack: 5001 })).verdict, "drop", "fin");
  assert.equal(
    lab.run("tc", host(sport, "FA", { seq: 5001, ack: 1012 })).verdict,
    "drop",
    "fin back",
  );
  assert.equal(
    lab.run("xdp", peer(sport, "A", { seq: 1012, ack: 5002 })).verdict,
    "drop",
    "last ack",
  );
  assert.equal(lab.run("xdp", peer(sport, "S", { seq: 9000 })).verdict, "drop", "syn");
  assert.equal(
    lab.run("xdp", peer(sport, "PA", { seq: 1012, ack: 5002, payload: 100 })).verdict,
    "drop",
    "the cut connection's data",
  );
});

// At tc ingress an skb's headers may lie past its linear part: a frame of a page or more sent
// through a packet socket has only its Ethernet header there. A SYN behind a 616-byte
// destination-options header (tcp at byte 670) is judged like any SYN: an allowed one reaches
// its listener, a blocked one does not, in a prevent policy and in a detect policy whose block
// rule is in prevent. Two namespaces joined by veth, moat's tc ingress on b's interface.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createLab, sh } from "../helpers/netns.ts";
import { spawnLines } from "../helpers/child.ts";
import { inNamespace, NODE, ROOT } from "../helpers/paths.ts";
import { packet } from "../helpers/packets.ts";

const HARNESS_READY_MS = 60_000;

const policyOf = (mode: "prevent" | "detect") => `version: 1
mode: ${mode}
defaults: { ingress: allow, egress: allow }
rules:
  - name: no-ssh
    direction: ingress
    action: block
    mode: prevent
    layer4: { protocol: tcp, port: [22] }
`;

const LISTEN = `
const net = require("node:net");
let n = 0;
for (const port of [22, 80])
  net.createServer((s) => s.destroy()).listen({ port, host: "::" }, () => ++n === 2 && console.log("listening"));
`;

// sends each frame (hex) out of the interface, prints the tcp SYN-ACKs that come back
const SEND = `
import socket, sys, time, select, struct
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
s.bind((sys.argv[1], 0))
for h in sys.argv[2:]:
    s.send(bytes.fromhex(h))
end = time.time() + 1.5
while time.time() < end:
    r, _, _ = select.select([s], [], [], 0.2)
    if not r:
        continue
    f = s.recv(65535)
    if struct.unpack("!H", f[12:14])[0] == 0x86DD and f[20] == 6 and f[54 + 13] & 0x12 == 0x12:
        print("synack from", struct.unpack("!H", f[54:56])[0], flush=True)
print("done", flush=True)
`;

/** A SYN behind a 616-byte destination-options header (unknown options, skipped), 3600 bytes of
 * payload: past a page, so the packet socket builds it with only the Ethernet header linear. */
function bigSyn(src: string, dst: string, dport: number, srcMac: Buffer, dstMac: Buffer): string {
  const base = packet({ src, dst, proto: "tcp", sport: 42000 + dport, dport, payload: 3600 });
  const tcp = base.subarray(54);
  const opts = Buffer.alloc(616);
  opts[0] = 6;
  opts[1] = 616 / 8 - 1;
  let at = 2;
  for (let i = 0; i < 3; i++, at += 202) {
    opts[at] = 0x11;
    opts[at + 1] = 200;
  }
  opts[at] = 0x11;
  opts[at + 1] = 6;
  const ip = Buffer.from(base.subarray(14, 54));
  ip[6] = 60;
  ip.writeUInt16BE(616 + tcp.length, 4);
  const eth = Buffer.from(base.subarray(0, 14));
  dstMac.copy(eth, 0);
  srcMac.copy(eth, 6);
  return Buffer.concat([eth, ip, opts, tcp]).toString("hex");
}

const mac = (ns: string, nic: string) =>
  Buffer.from(
    (
      JSON.parse(sh("ip", ["-n", ns, "-j", "link", "show", nic])) as { address: string }[]
    )[0]!.address
      .split(":")
      .map((x) => parseInt(x, 16)),
  );

for (const mode of ["prevent", "detect"] as const)
  test(
    `tc ingress: a SYN whose tcp header is past the linear part and 512 bytes is judged (${mode})`,
    { timeout: 120_000 },
    async (t) => {
      const lab = createLab(t.name);
      const dir = mkdtempSync(join(tmpdir(), "moat-nonlinear-"));
      const policy = join(dir, "policy.yaml");
      writeFileSync(policy, policyOf(mode));
      for (const [ns, nic] of [
        [lab.a, lab.ifA],
        [lab.b, lab.ifB],
      ] as const)
        sh("ip", ["-n", ns, "link", "set", nic, "mtu", "9000"]);
      const harness = spawnLines(
        ...inNamespace(lab.b, `${ROOT}test/helpers/datapath-harness.ts`, [lab.ifB, policy, "tc"]),
      );
      const server = spawnLines("ip", ["netns", "exec", lab.b, NODE, "-e", LISTEN]);
      try {
        await harness.waitFor(/^ready /, HARNESS_READY_MS);
        await server.waitFor(/^listening$/);
        const [ma, mb] = [mac(lab.a, lab.ifA), mac(lab.b, lab.ifB)];
        // b answers a's address: its neighbour entry, so the SYN-ACK leaves at once
        sh("ip", [
          "-n",
          lab.b,
          "neigh",
          "replace",
          lab.v6.a,
          "lladdr",
          ma.toString("hex").replace(/(..)(?!$)/g, "$1:"),
          "dev",
          lab.ifB,
        ]);
        const frames = [80, 22].map((port) => bigSyn(lab.v6.a, lab.v6.b, port, ma, mb));
        const send = spawnLines("ip", [
          "netns",
          "exec",
          lab.a,
          "/usr/bin/python3",
          "-c",
          SEND,
          lab.ifA,
          ...frames,
        ]);
        await send.waitFor(/^done$/, 10_000);
        const answered = send.lines.filter((l) => l.startsWith("synack"));
        assert.deepEqual(answered, ["synack from 80"], "80 answers, 22 is dropped");
        harness.send("counters");
        const counters = JSON.parse((await harness.waitFor(/^counters /)).slice(9)) as Record<
          string,
          number
        >;
        assert.equal(counters.malformed, 0, "every frame was read");
      } finally {
        harness.kill();
        server.kill();
        lab.cleanup();
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );

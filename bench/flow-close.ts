// What flow records cost in the kernel (docs/performance.md, "Flow records"): BPF_PROG_TEST_RUN
// of the XDP program on
//   - an ESTABLISHED packet of a tracked, unlogged, allowed connection (repeat = 1e5, the same
//     entry every run): the per-packet path, whose per-entry counters flow records read;
//   - the CLOSING packet (a reset) of such a connection: its entry is written back to
//     established before each run (repeat = 1, so each run closes it once), which now sends the
//     connection's flow record through the ring buffer.
// Median of ROUNDS rounds. Run it in two trees (before and after a change) in the same session
// to compare: `node bench/flow-close.ts` prints one JSON line.
import { KernelLab } from "../test/helpers/kernel-lab.ts";
import { packet } from "../test/helpers/packets.ts";
import { writeConntrack } from "../src/datapath/conntrack.ts";
import { median } from "./results.ts";

const ROUNDS = 7;
const REPEAT = 100_000;
const CLOSES = 3000;
const H = "10.0.0.1";
const P = "198.51.100.1";

const lab = new KernelLab();
try {
  lab.policy(`
version: 1
mode: prevent
defaults: { ingress: block, egress: allow }
rules:
  - { name: web, direction: ingress, action: allow, layer4: { protocol: tcp, port: [443] } }
`);
  const i = (flags: string, payload = 0) =>
    packet({ src: P, dst: H, proto: "tcp", sport: 41000, dport: 443, flags, payload });
  const o = (flags: string) =>
    packet({ src: H, dst: P, proto: "tcp", sport: 443, dport: 41000, flags });
  lab.run("xdp", i("S"));
  lab.run("tc", o("SA"));
  lab.run("xdp", i("A"));
  const entry = [...lab.dp.conntrack()].find((e) => e.local.port === 443);
  if (!entry || entry.tcpState !== "established") throw new Error("no established entry");
  const ack = i("A", 100);
  const rst = i("R");

  const established: number[] = [];
  for (let r = 0; r < ROUNDS; r++)
    established.push(lab.dp.xdp.testRun({ data: ack, repeat: REPEAT }).duration);

  const closing: number[] = [];
  let records = 0;
  for (let r = 0; r < ROUNDS; r++) {
    const runs: number[] = [];
    for (let n = 0; n < CLOSES; n++) {
      writeConntrack(lab.dp.conntrackMap, entry);
      runs.push(lab.dp.xdp.testRun({ data: rst, repeat: 1 }).duration);
      if (n % 200 === 199) records += lab.events().length; // drained, as the daemon does
    }
    closing.push(median(runs));
  }
  records += lab.events().length;
  console.log(
    JSON.stringify({
      establishedNs: median(established),
      establishedRounds: established,
      closingNs: median(closing),
      closingRounds: closing,
      /** Flow records the closes sent (0 before flow records). */
      records,
    }),
  );
} finally {
  lab.close();
}

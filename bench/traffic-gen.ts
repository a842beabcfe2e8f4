// The native-XDP traffic generator of bench/traffic.ts, run inside the lab's sending namespace:
// loads build/bpf/test/traffic_gen.bpf.o, gives it the sources (argv[6], one IPv4 address a
// line), and for every number N read on stdin sends N copies of one 64-byte UDP frame (from MAC
// argv[3] to MAC argv[4]) to argv[5] port 9 out of device argv[2] with BPF_PROG_TEST_RUN in live-frames mode (XDP_TX
// from the kernel, no socket or skb on the sending side), each from the next source in turn;
// prints {"seconds": ...} when they are sent. A kernel that refuses live-frame test runs gets one
// line "refused: WHY" and no "ready".
import { readFileSync } from "node:fs";
import { native } from "../src/datapath/addon.ts";
import { listInterfaces } from "../src/datapath/interfaces.ts";
import { ROOT } from "../test/helpers/paths.ts";

const BPF_F_TEST_XDP_LIVE_FRAMES = 1 << 1;
const [device = "", srcMac = "", dstMac = "", dst = "", sourcesFile = ""] = process.argv.slice(2);

const nic = listInterfaces().find((n) => n.name === device);
if (!nic) throw new Error(`no interface ${device}`);
const octets = (a: string) => a.split(".").map(Number);

const object = native().BpfObject.open(`${ROOT}build/bpf/test/traffic_gen.bpf.o`);
object.load();
const sources = object.map("sources");
readFileSync(sourcesFile, "utf8")
  .split("\n")
  .filter(Boolean)
  .forEach((s, i) => {
    const k = Buffer.alloc(4);
    k.writeUInt32LE(i);
    sources.update(k, Buffer.from(octets(s)));
  });

// ethernet (to the peer's MAC), IPv4 (the source set per frame by the program), UDP to port 9
const frame = Buffer.alloc(64);
Buffer.from(dstMac.replaceAll(":", ""), "hex").copy(frame, 0);
Buffer.from(srcMac.replaceAll(":", ""), "hex").copy(frame, 6);
frame.writeUInt16BE(0x0800, 12);
frame[14] = 0x45;
frame.writeUInt16BE(50, 16);
frame[22] = 64;
frame[23] = 17;
frame.set(octets(dst), 30);
frame.writeUInt16BE(40000, 34);
frame.writeUInt16BE(9, 36);
frame.writeUInt16BE(30, 38);
frame.fill(0x61, 42);

// struct xdp_md: data_end is the frame's length (the kernel checks it); the frames leave by the
// device the run names as their ingress
const ctx = Buffer.alloc(24);
ctx.writeUInt32LE(frame.length, 4);
ctx.writeUInt32LE(nic.ifindex, 12);
const program = object.program("traffic_gen");

const send = (repeat: number) =>
  program.testRunAsync({
    data: frame,
    ctx,
    repeat,
    flags: BPF_F_TEST_XDP_LIVE_FRAMES,
    // live frames take no output buffers
    dataOutSize: 0,
    ctxOutSize: 0,
  });

try {
  await send(1);
} catch (err) {
  console.log(`refused: ${err instanceof Error ? err.message : String(err)}`);
  object.close();
  process.exit(0);
}
console.log("ready");
let queue = Promise.resolve();
process.stdin.on("data", (d: Buffer) => {
  for (const line of d.toString().split("\n").filter(Boolean)) {
    queue = queue.then(async () => {
      const t = performance.now();
      await send(Number(line));
      console.log(JSON.stringify({ seconds: (performance.now() - t) / 1000 }));
    });
  }
});
process.stdin.on("end", () => void queue.then(() => object.close()));

// B9's latency client: DNS A queries one at a time from ONE unconnected UDP socket (as dnsperf
// and libc send them), each timed from send to answer with process.hrtime. Prints one JSON line:
// the latencies in microseconds (after a warm-up) and the count of each response code.
//
//   node bench/dns-latency-client.ts SERVER COUNT NAME...
import { createSocket } from "node:dgram";

const [server = "127.0.0.1", countArg = "1000", ...names] = process.argv.slice(2);
const COUNT = Number(countArg);
const WARMUP = 200;
const TIMEOUT_MS = 2000;
const RCODES = ["NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED"];

/** A query for `name` A IN with id `id`, recursion desired. */
function query(id: number, name: string): Buffer {
  const labels = name.split(".").filter((l) => l !== "");
  const q = Buffer.alloc(12 + labels.reduce((n, l) => n + 1 + l.length, 1) + 4);
  q.writeUInt16BE(id, 0);
  q.writeUInt16BE(0x0100, 2);
  q.writeUInt16BE(1, 4);
  let at = 12;
  for (const l of labels) {
    q[at++] = l.length;
    at += q.write(l, at, "ascii");
  }
  q[at++] = 0;
  q.writeUInt16BE(1, at); // A
  q.writeUInt16BE(1, at + 2); // IN
  return q;
}

const socket = createSocket("udp4");
let waiting: { id: number; resolve: (rcode: string) => void } | null = null;
socket.on("message", (msg) => {
  if (!waiting || msg.length < 12 || msg.readUInt16BE(0) !== waiting.id) return;
  const w = waiting;
  waiting = null;
  w.resolve(RCODES[(msg[3] ?? 0) & 0x0f] ?? `rcode${(msg[3] ?? 0) & 0x0f}`);
});

function ask(id: number, name: string): Promise<string> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      waiting = null;
      resolve("timeout");
    }, TIMEOUT_MS);
    waiting = {
      id,
      resolve: (rcode) => {
        clearTimeout(timer);
        resolve(rcode);
      },
    };
    socket.send(query(id, name), 53, server);
  });
}

const latencyUs: number[] = [];
const rcodes: Record<string, number> = {};
const list = names.length > 0 ? names : ["localhost"];
for (let i = 0; i < WARMUP + COUNT; i++) {
  const id = (i * 7919 + 1) & 0xffff;
  const t0 = process.hrtime.bigint();
  const rcode = await ask(id, list[i % list.length] ?? "localhost");
  const us = Number(process.hrtime.bigint() - t0) / 1000;
  if (i < WARMUP) continue;
  rcodes[rcode] = (rcodes[rcode] ?? 0) + 1;
  if (rcode !== "timeout") latencyUs.push(us);
}
socket.close();
process.stdout.write(`${JSON.stringify({ latencyUs, rcodes })}\n`);

// Long-running traffic for tests that restart or disturb moat while packets flow, run in a lab
// namespace: `node traffic.ts MODE ...`, reporting on stdout line by line.
//   probe HOST PORT      a TCP connect every 10 ms (each given 300 ms); prints "accepted N" for
//                        every connection that opens and, on SIGTERM, "probes N accepted M"
//   feed PORT            a server that sends 64 bytes every 10 ms to each client; "listening"
//   follow HOST PORT     connects, counts what arrives: "bytes N" every 100 ms, "closed WHY" if
//                        the connection ends
//   feed-udp PORT        a udp server that sends 64 bytes every 10 ms to each peer that sent it
//                        a datagram; "listening"
//   follow-udp HOST PORT a connected udp socket that sends one datagram, then only counts what
//                        arrives: "bytes N" every 100 ms
//   send-udp HOST PORT   sends 64 bytes every 10 ms from an unconnected socket
//   hello-udp HOST PORT  an unconnected udp socket that sends one datagram, then only counts
//                        what arrives: "bytes N" every 100 ms
//   count-udp PORT       an unconnected (bound) udp socket counting what arrives: "bytes N"
//                        every 100 ms, after "listening"
import { createSocket } from "node:dgram";
import { connect, createServer, type Socket } from "node:net";

const [mode = "", a = "", b = ""] = process.argv.slice(2);
const say = (line: string) => process.stdout.write(`${line}\n`);

function probe(host: string, port: number): void {
  let probes = 0;
  let accepted = 0;
  const timer = setInterval(() => {
    probes++;
    const s: Socket = connect({ host, port });
    const giveUp = setTimeout(() => s.destroy(), 300);
    s.on("connect", () => {
      accepted++;
      say(`accepted ${accepted}`);
      clearTimeout(giveUp);
      s.destroy();
    });
    s.on("error", () => clearTimeout(giveUp));
  }, 10);
  process.on("SIGTERM", () => {
    clearInterval(timer);
    say(`probes ${probes} accepted ${accepted}`);
    process.exit(0);
  });
  say("probing");
}

function feed(port: number): void {
  const chunk = Buffer.alloc(64, 0x62);
  createServer((s) => {
    s.on("error", () => {});
    const timer = setInterval(() => s.write(chunk), 10);
    s.on("close", () => clearInterval(timer));
  }).listen(port, () => say("listening"));
}

function follow(host: string, port: number): void {
  let bytes = 0;
  const s = connect({ host, port });
  s.on("data", (d) => (bytes += d.length));
  const timer = setInterval(() => say(`bytes ${bytes}`), 100);
  const end = (why: string) => {
    clearInterval(timer);
    say(`closed ${why}`);
  };
  s.on("error", (err: NodeJS.ErrnoException) => end(err.code ?? err.message));
  s.on("close", () => end("close"));
  process.on("SIGTERM", () => process.exit(0));
}

function feedUdp(port: number): void {
  const chunk = Buffer.alloc(64, 0x62);
  const server = createSocket("udp4");
  const peers = new Set<string>();
  server.on("message", (_msg, from) => {
    const key = `${from.address}:${from.port}`;
    if (peers.has(key)) return;
    peers.add(key);
    setInterval(() => server.send(chunk, from.port, from.address), 10);
  });
  server.bind(port, () => say("listening"));
}

function followUdp(host: string, port: number): void {
  let bytes = 0;
  const s = createSocket("udp4");
  s.on("message", (d) => (bytes += d.length));
  s.connect(port, host, () => s.send("hello"));
  setInterval(() => say(`bytes ${bytes}`), 100);
  process.on("SIGTERM", () => process.exit(0));
}

function sendUdp(host: string, port: number): void {
  const chunk = Buffer.alloc(64, 0x63);
  const s = createSocket("udp4");
  setInterval(() => s.send(chunk, port, host), 10);
  process.on("SIGTERM", () => process.exit(0));
}

function helloUdp(host: string, port: number): void {
  let bytes = 0;
  const s = createSocket("udp4");
  s.on("message", (d) => (bytes += d.length));
  s.send("hello", port, host);
  setInterval(() => say(`bytes ${bytes}`), 100);
  process.on("SIGTERM", () => process.exit(0));
}

function countUdp(port: number): void {
  let bytes = 0;
  const s = createSocket("udp4");
  s.on("message", (d) => (bytes += d.length));
  s.bind(port, () => {
    say("listening");
    setInterval(() => say(`bytes ${bytes}`), 100);
  });
  process.on("SIGTERM", () => process.exit(0));
}

if (mode === "probe") probe(a, Number(b));
else if (mode === "send-udp") sendUdp(a, Number(b));
else if (mode === "count-udp") countUdp(Number(a));
else if (mode === "feed-udp") feedUdp(Number(a));
else if (mode === "hello-udp") helloUdp(a, Number(b));
else if (mode === "follow-udp") followUdp(a, Number(b));
else if (mode === "feed") feed(Number(a));
else if (mode === "follow") follow(a, Number(b));
else {
  say(`unknown mode ${mode}`);
  process.exit(2);
}

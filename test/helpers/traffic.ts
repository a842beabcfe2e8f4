// Long-running traffic for tests that restart or disturb moat while packets flow, run in a lab
// namespace: `node traffic.ts MODE ...`, reporting on stdout line by line.
//   probe HOST PORT      a TCP connect every 10 ms (each given 300 ms); prints "accepted N" for
//                        every connection that opens and, on SIGTERM, "probes N accepted M"
//   feed PORT            a server that sends 64 bytes every 10 ms to each client; "listening"
//   follow HOST PORT     connects, counts what arrives: "bytes N" every 100 ms, "closed WHY" if
//                        the connection ends
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

if (mode === "probe") probe(a, Number(b));
else if (mode === "feed") feed(Number(a));
else if (mode === "follow") follow(a, Number(b));
else {
  say(`unknown mode ${mode}`);
  process.exit(2);
}

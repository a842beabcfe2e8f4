// B7's client: one measurement, one JSON line on stdout. Every request and handshake uses a new
// TCP connection (what the relay adds is paid per connection).
//
//   node bench/l7-client.ts http HOST PORT COUNT              GET /small, µs each
//   node bench/l7-client.ts tls HOST PORT SNI COUNT [fresh]   TLS handshakes, µs each (fresh:
//                                                             a new SNI each time, N.SNI)
//   node bench/l7-client.ts transfer HOST PORT BYTES [tls SNI] GET /big: MB/s
import { request } from "node:http";
import { connect, type TLSSocket } from "node:tls";

const [mode = "http", host = "127.0.0.1", portArg = "80", ...rest] = process.argv.slice(2);
const port = Number(portArg);
const WARMUP = 20;

function timeHttp(): Promise<number> {
  return new Promise((resolve, reject) => {
    const t = process.hrtime.bigint();
    const req = request(
      { host, port, path: "/small", agent: false, headers: { host: "web.bench.test" } },
      (res) => {
        res.resume();
        res.on("end", () => resolve(Number(process.hrtime.bigint() - t) / 1000));
      },
    );
    req.on("error", reject);
    req.end();
  });
}

function timeTls(servername: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const t = process.hrtime.bigint();
    const s: TLSSocket = connect({ host, port, servername, rejectUnauthorized: false });
    s.once("secureConnect", () => {
      const us = Number(process.hrtime.bigint() - t) / 1000;
      s.destroy();
      resolve(us);
    });
    s.on("error", reject);
  });
}

/** Samples over 4 ms: [wall-clock start (ms), µs], for matching with the daemon's stalls. */
const slow: [number, number][] = [];

async function samples(count: number, one: (i: number) => Promise<number>): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < count + WARMUP; i++) {
    const at = Date.now();
    const us = await one(i);
    if (i >= WARMUP) out.push(us);
    if (i >= WARMUP && us > 4000) slow.push([at, Math.round(us)]);
  }
  return out;
}

async function transfer(bytes: number, tlsSni?: string): Promise<number> {
  const t = process.hrtime.bigint();
  const path = `/big?bytes=${bytes}`;
  let got = 0;
  await new Promise<void>((resolve, reject) => {
    const done = (stream: NodeJS.ReadableStream) => {
      stream.on("data", (c: Buffer) => (got += c.length));
      stream.on("end", () => resolve());
      stream.on("error", reject);
    };
    if (!tlsSni) {
      const req = request({ host, port, path, agent: false }, done);
      req.on("error", reject);
      req.end();
      return;
    }
    const s = connect({ host, port, servername: tlsSni, rejectUnauthorized: false }, () => {
      s.write(`GET ${path} HTTP/1.1\r\nhost: ${tlsSni}\r\nconnection: close\r\n\r\n`);
    });
    done(s);
  });
  const seconds = Number(process.hrtime.bigint() - t) / 1e9;
  if (got < bytes) throw new Error(`transfer: got ${got} of ${bytes} bytes`);
  return bytes / 1e6 / seconds;
}

if (mode === "http") {
  const us = await samples(Number(rest[0] ?? 200), () => timeHttp());
  console.log(JSON.stringify({ us, slow }));
} else if (mode === "tls") {
  const [sni = "web.bench.test", count = "200", fresh] = rest;
  const name = (i: number) => (fresh ? `n${i}-${process.pid}.${sni}` : sni);
  const us = await samples(Number(count), (i) => timeTls(name(i)));
  console.log(JSON.stringify({ us, slow }));
} else {
  const [bytes = "1000000000", tls, sni] = rest;
  console.log(JSON.stringify({ mbps: await transfer(Number(bytes), tls ? sni : undefined) }));
}

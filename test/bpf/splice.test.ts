// The kernel splice against the real kernel: a relay in this process accepts a client on
// loopback, connects to a server, forwards the first bytes through Node, then splices. The
// client and the server see every byte in order (bytes Node had read, bytes queued in the
// kernel and bytes in flight at splice time), a FIN either way while the other way still flows,
// each mode (sockmap, and splice(2) and copy forced), and a large transfer that moves through
// the kernel's counters while this process stays near idle. Needs root and `make build`.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { once } from "node:events";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";
import { connect, createServer, type Server, type Socket } from "node:net";
import type { AddressInfo } from "node:net";
import { Datapath } from "../../src/datapath/datapath.ts";
import type { SpliceMode, SpliceResult } from "../../src/datapath/index.ts";

let dp: Datapath;
const servers: Server[] = [];
const children: ChildProcess[] = [];

before(() => {
  dp = Datapath.start({ interfaces: [], pinRoot: null, socketHooks: false });
});

after(() => {
  for (const s of servers) s.close();
  for (const c of children) if (c.exitCode === null && c.pid) process.kill(c.pid, "SIGKILL");
  dp?.stop();
});

/** `len` bytes of a stream that never repeats within a test: a wrong order shows. */
function pattern(seed: number, offset: number, len: number): Buffer {
  const b = Buffer.alloc(len);
  for (let i = 0; i < len; i++) {
    const n = offset + i;
    b[i] = (n * 31 + (n >>> 8) * 7 + (n >>> 16) * 13 + seed) & 0xff;
  }
  return b;
}

async function listen(server: Server): Promise<number> {
  servers.push(server);
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return (server.address() as AddressInfo).port;
}

/** Everything a socket receives until its FIN. */
function collect(s: Socket): Promise<Buffer> {
  const chunks: Buffer[] = [];
  s.on("data", (c: Buffer) => chunks.push(c));
  return new Promise((resolve, reject) => {
    s.once("end", () => resolve(Buffer.concat(chunks)));
    s.once("error", reject);
  });
}

/** Resolves once the kernel holds the peer's FIN on `s` (its TCP state is CLOSE-WAIT). */
async function finArrived(s: Socket): Promise<void> {
  for (let i = 0; i < 400; i++) {
    const ss = spawnSync("ss", ["-tnH", "state", "close-wait", "sport", "=", `:${s.localPort}`]);
    if (ss.stdout.toString().trim() !== "") return;
    await new Promise((r) => setTimeout(r, 5));
  }
}

/**
 * A relay on loopback: forwards the client's first chunk through Node, waits until Node has
 * read some of the server's bytes too, then splices (with bytes in Node, in the kernel's queues
 * and in flight on both sides). `afterServerFin`: the splice waits until the server's FIN is
 * held by the kernel.
 */
async function relay(
  serverPort: number,
  mode: SpliceMode | undefined,
  signal?: AbortSignal,
  afterServerFin = false,
): Promise<{ port: number; spliced: Promise<SpliceMode>; ended: Promise<SpliceResult> }> {
  let spliced!: (m: Promise<SpliceMode>) => void;
  let ended!: (r: SpliceResult) => void;
  const splicedP = new Promise<SpliceMode>((r) => (spliced = (m) => void m.then(r)));
  const endedP = new Promise<SpliceResult>((r) => (ended = r));
  const port = await listen(
    createServer({ allowHalfOpen: true, pauseOnConnect: true }, (client) => {
      client.once("data", (head: Buffer) => {
        client.pause();
        const upstream = connect({ port: serverPort, host: "127.0.0.1", allowHalfOpen: true });
        upstream.once("connect", () => {
          upstream.write(head);
          // Node reads some of the server's burst before the splice
          upstream.once("readable", () => {
            // a FIN "before the splice" means one the kernel already holds, not one in flight
            const ready = afterServerFin ? finArrived(upstream) : Promise.resolve();
            void ready.then(() =>
              spliced(dp.splice(client, upstream, { force: mode, onEnd: ended, signal })),
            );
          });
        });
      });
      client.resume();
    }),
  );
  return { port, spliced: splicedP, ended: endedP };
}

const HELLO = Buffer.from("HELLO\n");
const BURST = 2 << 20;

/** The client half-closes first; the server keeps sending after it saw the client's FIN. */
async function clientFinFirst(mode: SpliceMode | undefined): Promise<SpliceMode> {
  const fromClient = Buffer.concat([HELLO, pattern(1, 0, BURST)]);
  const first = pattern(2, 0, BURST);
  const second = pattern(2, BURST, 256 << 10);
  let serverGot!: Promise<Buffer>;
  const serverPort = await listen(
    createServer({ allowHalfOpen: true }, (s) => {
      s.write(first);
      serverGot = collect(s);
      void serverGot.then(() => s.end(second));
    }),
  );
  const r = await relay(serverPort, mode);
  const client = connect({ port: r.port, host: "127.0.0.1", allowHalfOpen: true });
  const clientGot = collect(client);
  client.write(fromClient);
  // the kernel takes only established sockets: a FIN before the splice is another test
  void r.spliced.then(() => client.end());
  const [got, sent] = await Promise.all([clientGot, r.spliced.then(() => serverGot)]);
  assert.ok(
    sent.equals(fromClient),
    `server got ${sent.length} of ${fromClient.length} bytes in order`,
  );
  assert.ok(
    got.equals(Buffer.concat([first, second])),
    `client got ${got.length} of ${first.length + second.length} bytes in order`,
  );
  const end = await r.ended;
  assert.equal(end.end, "closed");
  assert.ok(end.toUpstream > 0 && end.toUpstream < fromClient.length, `${end.toUpstream} bytes up`);
  client.destroy();
  return r.spliced;
}

/** The server half-closes first; the client sends after it saw the server's FIN. */
async function serverFinFirst(
  mode: SpliceMode | undefined,
  finBeforeSplice = false,
): Promise<SpliceMode> {
  const fromServer = pattern(3, 0, BURST);
  const before = Buffer.concat([HELLO, pattern(4, 0, 64 << 10)]);
  const afterFin = pattern(4, 64 << 10, BURST);
  let serverGot!: Promise<Buffer>;
  let spliced: Promise<SpliceMode> = Promise.resolve("copy");
  const serverPort = await listen(
    createServer({ allowHalfOpen: true }, (s) => {
      serverGot = collect(s);
      s.write(fromServer);
      if (finBeforeSplice) s.end();
      else void spliced.then(() => s.end());
    }),
  );
  const r = await relay(serverPort, mode, undefined, finBeforeSplice);
  spliced = r.spliced;
  const client = connect({ port: r.port, host: "127.0.0.1", allowHalfOpen: true });
  const clientGot = collect(client);
  client.write(before);
  const got = await clientGot;
  assert.ok(
    got.equals(fromServer),
    `client got ${got.length} of ${fromServer.length} bytes in order`,
  );
  client.end(afterFin);
  await r.spliced;
  const sent = await serverGot;
  assert.ok(
    sent.equals(Buffer.concat([before, afterFin])),
    `server got ${sent.length} of ${before.length + afterFin.length} bytes in order`,
  );
  assert.equal((await r.ended).end, "closed");
  client.destroy();
  return r.spliced;
}

for (const mode of ["sockmap", "splice", "copy"] as const) {
  const force = mode === "sockmap" ? undefined : mode;
  test(`${mode}: bytes read, queued and in flight at splice time arrive in order; the client's FIN first`, async () => {
    const before = dp.counters().spliced.bytes;
    assert.equal(await clientFinFirst(force), mode);
    const moved = dp.counters().spliced.bytes - before;
    if (mode === "sockmap") assert.ok(moved > 0n, "the kernel sent bytes on");
    else assert.equal(moved, 0n, "the kernel moved nothing");
  });

  test(`${mode}: the server's FIN first, the client sends after it`, async () => {
    assert.equal(await serverFinFirst(force), mode);
  });

  test(`${mode}: an aborted splice resets both sides`, async () => {
    let server!: Socket;
    const serverPort = await listen(
      createServer((s) => {
        server = s;
        s.on("data", (c: Buffer) => s.write(c)); // echo
      }),
    );
    const cut = new AbortController();
    const r = await relay(serverPort, force, cut.signal);
    const client = connect({ port: r.port, host: "127.0.0.1" });
    client.write(HELLO);
    assert.equal(await r.spliced, mode);
    client.write("after the splice\n");
    await new Promise<void>((res) => {
      let got = "";
      client.on("data", (c: Buffer) => (got += c.toString()) && got.includes("after") && res());
    });
    const errors = [client, server].map(
      (s) =>
        new Promise<string>((res) =>
          s.once("error", (e: NodeJS.ErrnoException) => res(e.code ?? "")),
        ),
    );
    cut.abort();
    assert.deepEqual(await Promise.all(errors), ["ECONNRESET", "ECONNRESET"]);
    assert.equal((await r.ended).end, "cut");
  });
}

// Node holds this much of the server's bytes at splice time: more than a client that does not
// read and the relay's socket can take, so writing them cannot finish until the client reads
const HELD = 32 << 20;

for (const mode of ["sockmap", "splice"] as const) {
  test(`${mode}: a client that does not read the bytes Node held holds only its own connection`, async () => {
    // pair A: the server sends HELD bytes at once and ends once its client has ended
    const fromServer = pattern(5, 0, HELD);
    const serverA = await listen(
      createServer({ allowHalfOpen: true }, (s) => {
        s.write(fromServer);
        s.on("data", () => {});
        s.once("end", () => s.end());
      }),
    );
    let endedA: SpliceResult | null = null;
    let handedA!: () => void;
    const handed = new Promise<void>((r) => (handedA = r));
    let modeA!: Promise<SpliceMode>;
    const endA = new Promise<SpliceResult>((resolve) => {
      void listen(
        createServer({ allowHalfOpen: true, pauseOnConnect: true }, (client) => {
          const upstream = connect({ port: serverA, host: "127.0.0.1", allowHalfOpen: true });
          const held: Buffer[] = [];
          let n = 0;
          upstream.on("data", (c: Buffer) => {
            held.push(c);
            n += c.length;
            if (n < HELD) return;
            upstream.pause();
            upstream.removeAllListeners("data");
            // unconsumed: the splice takes it and writes it to the client first
            upstream.unshift(Buffer.concat(held));
            modeA = dp.splice(client, upstream, {
              force: mode === "sockmap" ? undefined : mode,
              onEnd: (e) => resolve((endedA = e)),
            });
            handedA();
          });
        }),
      ).then((port) => {
        const a = connect({ port, host: "127.0.0.1", allowHalfOpen: true });
        a.pause(); // reads nothing until pair B has flowed
        clientA = a;
      });
    });
    let clientA!: Socket;
    await handed;

    // pair B, spliced after A: an echo goes both ways through it
    const serverB = await listen(createServer((s) => s.on("data", (c: Buffer) => s.write(c))));
    const b = await relay(serverB, mode === "sockmap" ? undefined : mode);
    const clientB = connect({ port: b.port, host: "127.0.0.1" });
    clientB.write(HELLO);
    assert.equal(await b.spliced, mode);
    clientB.write("after the splice\n");
    await new Promise<void>((res) => {
      let got = "";
      clientB.on("data", (c: Buffer) => (got += c.toString()) && got.includes("after") && res());
    });
    clientB.end();
    assert.equal((await b.ended).end, "closed");
    assert.equal(endedA, null, "pair A is still open while B flowed");

    // A's client reads now: every byte Node held, in order, then the pair ends closed
    const gotA: Buffer[] = [];
    let n = 0;
    await new Promise<void>((res, rej) => {
      clientA.on("data", (c: Buffer) => {
        gotA.push(c);
        n += c.length;
        if (n >= HELD) res();
      });
      clientA.once("error", rej);
      clientA.resume();
    });
    assert.ok(
      Buffer.concat(gotA).equals(fromServer),
      `client A got ${n} of ${HELD} bytes in order`,
    );
    assert.equal(await modeA, mode);
    clientA.end();
    assert.equal((await endA).end, "closed");
    clientA.destroy();
    clientB.destroy();
  });
}

test("a side whose FIN came before the splice: the kernel refuses the sockmap, splice(2) moves the bytes", async () => {
  assert.equal(await serverFinFirst(undefined, true), "splice");
  // the upstream socket is in CLOSE_WAIT (8): the kernel takes established sockets only
  assert.match(dp.spliceStats().lastRefusal ?? "", /tcp state 8/);
});

// A server that sends `bytes` to each connection, and a client that counts what it gets: child
// processes, so that this process's CPU time is the relay's alone.
const SENDER = `
const net = require("node:net");
const total = Number(process.argv[1]);
const chunk = Buffer.alloc(1 << 20, 120);
const srv = net.createServer((s) => {
  let left = total;
  const more = () => {
    while (left > 0) {
      const n = Math.min(left, chunk.length);
      left -= n;
      if (!s.write(n === chunk.length ? chunk : chunk.subarray(0, n))) return s.once("drain", more);
    }
    s.end();
  };
  // starts when the client says so: after the splice
  s.once("data", more);
});
srv.listen(0, "127.0.0.1", () => console.log(srv.address().port));
`;
const COUNTER = `
const net = require("node:net");
const s = net.connect(Number(process.argv[1]), "127.0.0.1", () => s.write("go"));
let n = 0;
s.on("data", (c) => (n += c.length));
s.on("end", () => { console.log(n); s.end(); });
`;

function child(script: string, arg: string): { proc: ChildProcess; line: Promise<string> } {
  const proc = spawn(process.execPath, ["-e", script, arg], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  children.push(proc);
  const lines = createInterface({ input: proc.stdout! });
  return { proc, line: once(lines, "line").then(([l]) => String(l)) };
}

async function transfer(
  bytes: number,
  mode: SpliceMode | undefined,
): Promise<{ seconds: number; cpuSeconds: number; got: number; spliced: SpliceMode }> {
  const sender = child(SENDER, String(bytes));
  const serverPort = Number(await sender.line);
  let spliced!: Promise<SpliceMode>;
  const port = await listen(
    createServer({ allowHalfOpen: true, pauseOnConnect: true }, (client) => {
      const upstream = connect({ port: serverPort, host: "127.0.0.1", allowHalfOpen: true });
      upstream.pause();
      upstream.once("connect", () => (spliced = dp.splice(client, upstream, { force: mode })));
    }),
  );
  const start = process.hrtime.bigint();
  const cpu = process.cpuUsage();
  const counter = child(COUNTER, String(port));
  const got = Number(await counter.line);
  const used = process.cpuUsage(cpu);
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  await once(counter.proc, "exit");
  sender.proc.kill();
  return { seconds, cpuSeconds: (used.user + used.system) / 1e6, got, spliced: await spliced };
}

// 1 GiB takes 10-40 s on a loaded 2-core test machine: a quarter of it keeps the file short
const LARGE = Number(process.env.MOAT_SPLICE_BYTES ?? 256 << 20);

test(`${LARGE >> 20} MiB through the sockmap: every byte through the kernel's counters, the relay near idle`, async (t) => {
  const before = dp.counters();
  const r = await transfer(LARGE, undefined);
  const after = dp.counters();
  const rate = LARGE / r.seconds / (1 << 30);
  t.diagnostic(
    `sockmap: ${r.seconds.toFixed(2)} s, ${rate.toFixed(2)} GiB/s, relay CPU ${(r.cpuSeconds * 1000).toFixed(0)} ms`,
  );
  assert.equal(r.spliced, "sockmap", `refused: ${dp.spliceStats().lastRefusal}`);
  assert.equal(r.got, LARGE);
  assert.ok(after.spliced.bytes - before.spliced.bytes >= BigInt(LARGE));
  assert.equal(after.splicedConnections.packets - before.splicedConnections.packets, 1n);
  // the relay accepted, connected and spliced; the bytes cost it nothing
  assert.ok(
    r.cpuSeconds < 0.1 + r.seconds * 0.05,
    `relay CPU ${r.cpuSeconds} s over ${r.seconds} s`,
  );
});

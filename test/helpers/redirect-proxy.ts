// A proxy that redirects send connections to, for test/e2e/redirect.test.ts. It answers each
// client with what it learned of the client's original destination:
//   lookup PORT API_SOCKET   tcp: asks moat's API (/v1/redirects/original) by the client's address
//   v2 PORT                  tcp: reads the PROXY v2 header moat's relay wrote before the bytes
//   forward PORT API_SOCKET  tcp: looks the destination up and connects there itself (a real proxy)
//   udp PORT API_SOCKET      udp: answers each datagram from the lookup
// Prints "listening" when ready. Answers are one line, inside a tiny HTTP response for tcp.
import { createServer, connect, type Socket } from "node:net";
import { createSocket } from "node:dgram";
import { request } from "node:http";

const [mode = "", portText = "0", api = ""] = process.argv.slice(2);
const port = Number(portText);

function original(peer: string, peerPort: number, protocol: string): Promise<string> {
  const path = `/v1/redirects/original?peer=${encodeURIComponent(`${peer}:${peerPort}`)}&protocol=${protocol}`;
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: api, path }, (res) => {
      let body = "";
      res.on("data", (c: Buffer) => (body += c.toString()));
      res.on("end", () => resolve(body));
    });
    req.on("error", reject);
    req.end();
  });
}

const reply = (s: Socket, line: string) =>
  s.end(`HTTP/1.0 200 OK\r\nContent-Length: ${line.length + 1}\r\n\r\n${line}\n`);

/** Waits for the client's request (so curl sees a whole exchange), then answers. */
function onRequest(s: Socket, answer: (head: Buffer) => Promise<string> | string): void {
  let got = Buffer.alloc(0);
  s.on("data", (chunk: Buffer) => {
    got = Buffer.concat([got, chunk]);
    if (!got.includes("\r\n\r\n")) return;
    s.removeAllListeners("data");
    void Promise.resolve(answer(got)).then(
      (line) => reply(s, line),
      (err: Error) => reply(s, `error ${err.message}`),
    );
  });
}

function parseV2(b: Buffer): string {
  if (b.subarray(0, 12).toString("hex") !== "0d0a0d0a000d0a515549540a") return "no PROXY v2 header";
  const fam = b[13];
  const ip4 = (o: number) => [...b.subarray(o, o + 4)].join(".");
  if (fam === 0x11)
    return `v2 src=${ip4(16)}:${b.readUInt16BE(24)} dst=${ip4(20)}:${b.readUInt16BE(26)}`;
  return `v2 family ${fam}`;
}

if (mode === "udp") {
  const sock = createSocket("udp4");
  sock.on("message", (_msg, from) => {
    void original(from.address, from.port, "udp").then((body) =>
      sock.send(`udp ${body}`, from.port, from.address),
    );
  });
  sock.bind(port, "127.0.0.1", () => console.log("listening"));
} else {
  const server = createServer((s) => {
    const peer = s.remoteAddress ?? "";
    const peerPort = s.remotePort ?? 0;
    if (mode === "v2") return onRequest(s, parseV2);
    if (mode === "lookup") return onRequest(s, () => original(peer, peerPort, "tcp"));
    // forward: a real proxy connects to where the client meant to go
    onRequest(s, async (head) => {
      const o = JSON.parse(await original(peer, peerPort, "tcp")) as {
        original: { ip: string; port: number };
      };
      const up = connect(o.original.port, o.original.ip);
      up.write(head);
      let body = "";
      up.on("data", (c: Buffer) => (body += c.toString()));
      return new Promise<string>((resolve, reject) => {
        up.on("end", () => resolve(`forwarded: ${body.split("\r\n\r\n").pop()?.trim() ?? ""}`));
        up.on("error", reject);
      });
    });
  });
  server.listen(port, "127.0.0.1", () => console.log("listening"));
}

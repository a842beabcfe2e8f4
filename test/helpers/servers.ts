// Test servers for a lab namespace: `node servers.ts tcp:22,80 udp:53`. Every TCP port answers
// an HTTP request with 200 and a body (GET /stream/N sends N bytes), every UDP port echoes.
// `backlog:N` gives the TCP listeners a small accept queue (SYN flood tests).
import { createServer } from "node:net";
import { createSocket } from "node:dgram";

const spec = new Map<string, number[]>();
for (const arg of process.argv.slice(2)) {
  const [kind = "", ports = ""] = arg.split(":");
  spec.set(kind, ports.split(",").filter(Boolean).map(Number));
}

const backlog = spec.get("backlog")?.[0];
const chunk = Buffer.alloc(64 * 1024, 0x61);

function serveTcp(port: number): void {
  createServer((socket) => {
    socket.on("error", () => {});
    let head = "";
    socket.on("data", (data) => {
      head += data.toString("latin1");
      if (!head.includes("\r\n\r\n")) return;
      const stream = /^GET \/stream\/(\d+)/.exec(head);
      if (stream) {
        let left = Number(stream[1]);
        socket.write(`HTTP/1.1 200 OK\r\nContent-Length: ${left}\r\nConnection: close\r\n\r\n`);
        const pump = () => {
          while (left > 0 && socket.writable) {
            const part = chunk.subarray(0, Math.min(left, chunk.length));
            left -= part.length;
            if (!socket.write(part)) return;
          }
          if (left === 0) socket.end();
        };
        socket.on("drain", pump);
        pump();
        return;
      }
      const body = `port ${port}\n`;
      socket.end(
        `HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`,
      );
    });
  }).listen({ port, host: "::", ...(backlog ? { backlog } : {}) });
}

function serveUdp(port: number): void {
  const sock = createSocket({ type: "udp6", ipv6Only: false });
  sock.on("message", (msg, rinfo) => sock.send(msg, rinfo.port, rinfo.address));
  sock.bind(port, "::");
}

for (const port of spec.get("tcp") ?? []) serveTcp(port);
for (const port of spec.get("udp") ?? []) serveUdp(port);
process.stdout.write("listening\n");

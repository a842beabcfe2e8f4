// Upstream servers on loopback that answer what they received, so a test sees exactly what a
// relay forwarded: HTTP/1.1 (JSON echo, Upgrade: websocket and CONNECT echo the tunnel's bytes)
// and h2c (prior knowledge). `seen` lists every request in arrival order.
import { createServer, type IncomingHttpHeaders } from "node:http";
import { createServer as createH2Server } from "node:http2";
import { once } from "node:events";
import type { AddressInfo, Socket } from "node:net";

export interface Seen {
  method: string;
  url: string;
  version: string;
  headers: IncomingHttpHeaders;
  body: string;
}

export interface Upstream {
  port: number;
  seen: Seen[];
  close(): Promise<void>;
}

const echoTunnel = (socket: Socket, head: Buffer) => {
  socket.on("error", () => {});
  if (head.length) socket.write(head);
  socket.pipe(socket);
};

export async function startHttpEcho(): Promise<Upstream> {
  const seen: Seen[] = [];
  const sockets = new Set<Socket>();
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const entry: Seen = {
        method: req.method ?? "",
        url: req.url ?? "",
        version: req.httpVersion,
        headers: req.headers,
        body: Buffer.concat(chunks).toString(),
      };
      seen.push(entry);
      const body = JSON.stringify(entry);
      res.writeHead(200, { "content-type": "application/json", "x-upstream": "echo" });
      res.end(body);
    });
  });
  server.on("connection", (s: Socket) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  server.on("upgrade", (req, socket: Socket, head: Buffer) => {
    seen.push({
      method: req.method ?? "",
      url: req.url ?? "",
      version: "1.1",
      headers: req.headers,
      body: "",
    });
    socket.write(
      "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
    );
    echoTunnel(socket, head);
  });
  server.on("connect", (req, socket: Socket, head: Buffer) => {
    seen.push({
      method: "CONNECT",
      url: req.url ?? "",
      version: "1.1",
      headers: req.headers,
      body: "",
    });
    socket.write("HTTP/1.1 200 Connection Established\r\n\r\n");
    echoTunnel(socket, head);
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return {
    port: (server.address() as AddressInfo).port,
    seen,
    close: async () => {
      for (const s of sockets) s.destroy();
      server.close();
      await once(server, "close");
    },
  };
}

export async function startH2Echo(): Promise<Upstream> {
  const seen: Seen[] = [];
  const sockets = new Set<Socket>();
  const server = createH2Server();
  server.on("connection", (s: Socket) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  server.on("stream", (stream, headers) => {
    const chunks: Buffer[] = [];
    stream.on("data", (c: Buffer) => chunks.push(c));
    stream.on("end", () => {
      const entry: Seen = {
        method: String(headers[":method"]),
        url: String(headers[":path"]),
        version: "2",
        headers,
        body: Buffer.concat(chunks).toString(),
      };
      seen.push(entry);
      stream.respond({ ":status": 200, "content-type": "application/json", "x-upstream": "echo" });
      stream.end(JSON.stringify(entry));
    });
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return {
    port: (server.address() as AddressInfo).port,
    seen,
    close: async () => {
      for (const s of sockets) s.destroy();
      server.close();
      await once(server, "close");
    },
  };
}

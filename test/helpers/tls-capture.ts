// Captures the first bytes real TLS clients send: a local listener reads until a whole ClientHello
// has arrived, then resets the client. The bytes come back as the segments TCP delivered.

import { spawn } from "node:child_process";
import { createServer, type AddressInfo } from "node:net";
import { connect as tlsConnect, type ConnectionOptions } from "node:tls";
import { HandshakeReader } from "../../src/l7/tls/handshake-reader.ts";

export interface Capture {
  segments: Buffer[];
  bytes: Buffer;
}

/** Listens on 127.0.0.1, runs `start(port)` and returns what the first connection sent. */
export async function captureHello(
  start: (port: number) => () => void,
  timeoutMs = 10_000,
): Promise<Capture> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  let stop = () => {};
  try {
    return await new Promise<Capture>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("no ClientHello in time")), timeoutMs);
      server.once("connection", (socket) => {
        const segments: Buffer[] = [];
        const reader = new HandshakeReader();
        socket.on("error", () => {});
        socket.on("data", (chunk: Buffer) => {
          segments.push(chunk);
          reader.push(chunk);
          if (reader.next().kind === "more") return;
          clearTimeout(timer);
          socket.resetAndDestroy();
          resolve({ segments, bytes: Buffer.concat(segments) });
        });
      });
      stop = start(port);
    });
  } finally {
    stop();
    server.close();
  }
}

/** A command line client; killed by its pid when the capture is done. */
export const command = (program: string, args: (port: number) => string[]) => (port: number) => {
  const child = spawn(program, args(port), { stdio: ["pipe", "ignore", "ignore"] });
  child.on("error", () => {});
  return () => {
    if (child.exitCode === null) child.kill("SIGKILL");
  };
};

/** Node's own TLS client with these options. */
export const nodeClient = (options: ConnectionOptions) => (port: number) => {
  const socket = tlsConnect({ host: "127.0.0.1", port, rejectUnauthorized: false, ...options });
  socket.on("error", () => {});
  return () => socket.destroy();
};

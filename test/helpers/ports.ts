// TCP ports for the servers tests start themselves: a free one, for a server that cannot be told
// to listen on port 0 (or whose port must be known before it starts), and whether a server
// accepts connections on one yet.
import { createServer, connect, type AddressInfo, type Server } from "node:net";

/** A free TCP port on `host` (the kernel's pick, closed again before it is returned). */
export async function freePort(host = "127.0.0.1"): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, host, r));
  const { port } = s.address() as AddressInfo;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** Whether a TCP connection to `host`:`port` opens (it is closed again at once). */
export function accepts(port: number, host = "127.0.0.1"): Promise<boolean> {
  return new Promise((resolve) => {
    const c = connect(port, host);
    c.once("connect", () => (c.destroy(), resolve(true)));
    c.once("error", () => resolve(false));
  });
}

/** Starts `server` on an ephemeral loopback port; the port. */
export async function listenOnLoopback(server: Server): Promise<number> {
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return (server.address() as AddressInfo).port;
}

// TCP ports for the servers tests start themselves: a free one, for a server that cannot be told
// to listen on port 0 (or whose port must be known before it starts), and whether a server
// accepts connections on one yet.
import { readFileSync } from "node:fs";
import { createServer, connect, type AddressInfo, type Server } from "node:net";

/**
 * Ports no connection is given as its own (below or above the kernel's ip_local_port_range): a
 * port picked for a server stays free until the server listens, whatever connections open
 * meanwhile (one given that port as its own would make the server's bind fail).
 */
function serverPortRange(): [number, number] {
  const [low = 32768, high = 60999] = readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8")
    .trim()
    .split(/\s+/)
    .map(Number);
  return low - 1024 >= 4096 ? [Math.max(1024, low - 12288), low - 1] : [high + 1, 65535];
}

/** Whether a server can listen on `host`:`port` now (it is closed again at once). */
async function listenable(port: number, host: string): Promise<boolean> {
  const s = createServer();
  const ok = await new Promise<boolean>((resolve) => {
    s.once("error", () => resolve(false));
    s.listen(port, host, () => resolve(true));
  });
  if (ok) await new Promise<void>((r) => s.close(() => r()));
  return ok;
}

/** A free TCP port on `host`, outside the range connections' own ports are taken from. */
export async function freePort(host = "127.0.0.1"): Promise<number> {
  const [first, last] = serverPortRange();
  for (let tries = 0; tries < 200; tries++) {
    const port = first + Math.floor(Math.random() * (last - first + 1));
    if (await listenable(port, host)) return port;
  }
  throw new Error(`no free port on ${host} in ${first}-${last}`);
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

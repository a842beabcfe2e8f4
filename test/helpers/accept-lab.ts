// Servers inside a cgroup and a network namespace, and a remote client, for the accept side
// (docs/socket-hooks.md, "The accept side"): what the accept hook sees is a local socket of
// attach.cgroup receiving a connection from a peer.
import { spawnSync } from "node:child_process";
import { spawnLines, type LineChild } from "./child.ts";

/**
 * A server: each TCP connection gets "<comm> <port>\n" and is closed, each UDP datagram is
 * echoed. Listens on `::` (IPv4 too) on every `tcp:PORT` / `udp:PORT` argument, then prints
 * "listening".
 */
const SERVER = `
import selectors, socket, sys
comm = open("/proc/self/comm").read().strip()
sel = selectors.DefaultSelector()
for spec in sys.argv[1:]:
    kind, port = spec.split(":")
    s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM if kind == "tcp" else socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.bind(("::", int(port)))
    if kind == "tcp":
        s.listen(64)
    sel.register(s, selectors.EVENT_READ, (kind, int(port)))
print("listening", flush=True)
while True:
    for key, _ in sel.select():
        kind, port = key.data
        if kind == "tcp":
            c, _ = key.fileobj.accept()
            try:
                c.sendall(f"{comm} {port}\\n".encode())
            except OSError:
                pass
            c.close()
        else:
            data, peer = key.fileobj.recvfrom(2048)
            key.fileobj.sendto(data, peer)
`;

export interface Server extends LineChild {
  pid: number;
  /** Kills it and waits until it has exited (its cgroup can then be removed). */
  stop(): Promise<void>;
}

/**
 * `exe` (a python3, under any name) serving `specs` in namespace `ns`, started inside cgroup
 * directory `cgroupDir`, as the user `setpriv` arguments in `as` say; resolves once it listens.
 */
export async function serveIn(
  ns: string,
  cgroupDir: string,
  specs: string[],
  options: { exe?: string; as?: string[] } = {},
): Promise<Server> {
  const child = spawnLines("nsenter", [
    `--net=/run/netns/${ns}`,
    "sh",
    "-c",
    `echo $$ > ${cgroupDir}/cgroup.procs && exec "$@"`,
    "sh",
    ...(options.as ?? []),
    options.exe ?? "python3",
    "-c",
    SERVER,
    ...specs,
  ]);
  const stop = async () => {
    child.kill("SIGKILL");
    await child.exited;
  };
  try {
    await child.waitFor(/^listening$/, 10_000);
  } catch (err) {
    await stop();
    throw err;
  }
  return { ...child, pid: child.proc.pid ?? -1, stop };
}

const CLIENT = `
import socket, sys
proto, host, port, timeout = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
family = socket.AF_INET6 if ":" in host else socket.AF_INET
s = socket.socket(family, socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM)
s.settimeout(timeout)
try:
    if proto == "tcp":
        s.connect((host, port))
        print(s.recv(100).decode().strip() or "closed")
    else:
        s.sendto(b"ping", (host, port))
        print(s.recv(100).decode())
except socket.timeout:
    print("timeout")
except ConnectionRefusedError:
    print("refused")
except OSError as e:
    print(f"error {e.errno}")
`;

/**
 * What a client in namespace `ns` sees connecting to host:port (tcp: the server's greeting) or
 * sending a datagram (udp: the echo): the reply, "timeout", "refused" or "error ERRNO".
 */
export function peerConnect(
  ns: string,
  proto: "tcp" | "udp",
  host: string,
  port: number,
  timeoutS = 1,
): string {
  const r = spawnSync(
    "ip",
    ["netns", "exec", ns, "python3", "-c", CLIENT, proto, host, String(port), String(timeoutS)],
    { encoding: "utf8", timeout: 20_000 },
  );
  return r.stdout.trim() || `exit ${r.status}: ${r.stderr}`;
}

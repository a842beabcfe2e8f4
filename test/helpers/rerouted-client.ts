// One connected socket of uid EVIL_UID in a test's cgroup (evil0-route.ts routes it out of evil0),
// driven line by line, for the post-route reload tests.
import { spawnInCgroup, type CgroupForTest } from "./cgroup-lab.ts";
import type { LineChild } from "./child.ts";
import { EVIL_UID } from "./evil0-route.ts";
import type { MoatLab } from "./moat-lab.ts";

/**
 * udp: "send" sends a datagram ("sent" or the errno name). tcp: "head" sends the start of an HTTP
 * request ("sent"), "end" finishes it and reads the answer ("answered", "closed" or the errno
 * name). Both: "poll" reads what came without waiting ("received" or "nothing"), "close" closes
 * the socket ("closed").
 */
const CLIENT = `
import errno, os, socket, sys
host, port, proto = sys.argv[1], int(sys.argv[2]), sys.argv[3]
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM)
s.settimeout(5)
print("pid", os.getpid(), flush=True)
def say(word):
    print(word, flush=True)
try:
    s.connect((host, port))
    say("connected")
except OSError as e:
    say(errno.errorcode.get(e.errno, str(e.errno)))
for line in sys.stdin:
    command = line.strip()
    try:
        if command == "poll":
            try:
                s.recv(4096, socket.MSG_DONTWAIT)
                say("received")
            except BlockingIOError:
                say("nothing")
        elif command == "close":
            s.close()
            say("closed")
        elif proto == "udp":
            s.send(b"q")
            say("sent")
        elif command == "head":
            s.sendall(b"GET / HTTP/1.0\\r\\n")
            say("sent")
        else:
            s.sendall(b"\\r\\n")
            say("answered" if s.recv(4096).startswith(b"HTTP/1.1 200") else "closed")
    except socket.timeout:
        say("timeout")
    except OSError as e:
        say(errno.errorcode.get(e.errno, str(e.errno)))
`;

export interface ReroutedClient {
  child: LineChild;
  pid: string;
  /** What connect() did: "connected" or the errno name. */
  connected: string;
}

/** The client as uid EVIL_UID in the attached cgroup, connected to namespace a's `port`. */
export async function startReroutedClient(
  cg: CgroupForTest,
  lab: MoatLab,
  port: number,
  proto: "tcp" | "udp",
): Promise<ReroutedClient> {
  const child = spawnInCgroup(cg, lab, [
    "setpriv",
    `--reuid=${EVIL_UID}`,
    `--regid=${EVIL_UID}`,
    "--clear-groups",
    "/usr/bin/python3",
    "-c",
    CLIENT,
    lab.v4.a,
    String(port),
    proto,
  ]);
  const pid = (await child.waitFor(/^pid \d+$/)).slice(4);
  const connected = await child.waitFor(/^(connected|E[A-Z]+|timeout)$/);
  return { child, pid, connected };
}

/** One command to the client: what it printed. */
export function step(
  client: ReroutedClient,
  command: "send" | "head" | "end" | "poll" | "close",
): Promise<string> {
  client.child.send(command);
  return client.child.waitFor(/^(sent|answered|closed|timeout|received|nothing|E[A-Z]+)$/);
}

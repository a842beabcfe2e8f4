// A UDP DNS client whose socket a test drives step by step (python3, one socket, commands on
// stdin), and the asker moat's history names for a query: for tests of who the DNS proxy takes a
// query's client to be.
import { spawnSync } from "node:child_process";
import { spawnLines, type LineChild } from "./child.ts";
import { MOAT } from "./paths.ts";
import type { MoatEvent } from "../../src/datapath/index.ts";

/**
 * python3 with one UDP socket, driven by stdin lines; first {"ready": PID}, then one JSON line
 * per command:
 *   bind PORT [IP]         bind to IP:PORT (default 0.0.0.0)
 *   connect IP PORT        connect the socket (the kernel records its redirect here)
 *   sendto IP PORT NAME    ask NAME (A) from IP:PORT; the answer's rcode
 *   send NAME              ask NAME on the connected socket (no socket hook runs)
 */
export const UDP_CLIENT = String.raw`
import json, os, socket, struct, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(6)
def query(name):
    q = struct.pack(">HHHHHH", 0x4d54, 0x0100, 1, 0, 0, 0)
    for label in name.split("."):
        q += bytes([len(label)]) + label.encode()
    return q + b"\x00" + struct.pack(">HH", 1, 1)
def answer():
    try:
        data = s.recv(4096)
        return {"rcode": data[3] & 15}
    except OSError as e:
        return {"error": str(e)}
print(json.dumps({"ready": os.getpid()}), flush=True)
for line in sys.stdin:
    w = line.split()
    if w[0] == "bind":
        s.bind((w[2] if len(w) > 2 else "0.0.0.0", int(w[1])))
        print(json.dumps({"bound": s.getsockname()[1]}), flush=True)
    elif w[0] == "connect":
        s.connect((w[1], int(w[2])))
        print(json.dumps({"connected": True}), flush=True)
    elif w[0] == "sendto":
        s.sendto(query(w[3]), (w[1], int(w[2])))
        print(json.dumps(answer()), flush=True)
    elif w[0] == "send":
        s.send(query(w[1]))
        print(json.dumps(answer()), flush=True)
`;

/** UDP_CLIENT's next JSON line after `command`. */
export async function step(client: LineChild, command: string): Promise<Record<string, unknown>> {
  const seen = client.lines.length;
  client.send(command);
  for (let i = 0; i < 200; i++) {
    const line = client.lines.slice(seen).find((l) => l.startsWith("{"));
    if (line) return JSON.parse(line) as Record<string, unknown>;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`no answer to ${command}: ${client.lines.join("\n")}`);
}

/** The pid of the asker of the newest stored DNS query for `name` from local `port` (null: none). */
function storedAsker(apiSocket: string, name: string, port: number): number | null {
  const r = spawnSync(MOAT, ["events", "--json", "--limit", "50", "--api", `unix:${apiSocket}`], {
    encoding: "utf8",
  });
  let pid: number | null = null;
  for (const line of r.stdout.split("\n").filter((l) => l.startsWith("{"))) {
    const e = JSON.parse(line) as MoatEvent;
    if (e.type === "dns" && e.dns?.query === name && e.local.port === port)
      pid = e.process?.pid ?? null;
  }
  return pid;
}

/** storedAsker, waited for up to 5 s (the history takes an event in a moment). */
export async function askerOf(
  apiSocket: string,
  name: string,
  port: number,
): Promise<number | null> {
  for (let i = 0; i < 50; i++) {
    const pid = storedAsker(apiSocket, name, port);
    if (pid !== null) return pid;
    await new Promise((r) => setTimeout(r, 100));
  }
  return null;
}

/**
 * UDP_CLIENT in network namespace `ns`, moved into the cgroup directory `cgroupDir` first; its
 * pid once it is ready (the python process's own).
 */
export async function startUdpClient(
  ns: string,
  cgroupDir: string,
): Promise<{ client: LineChild; pid: number }> {
  const client = spawnLines("nsenter", [
    `--net=/run/netns/${ns}`,
    "sh",
    "-c",
    `echo $$ > ${cgroupDir}/cgroup.procs && exec python3 -c "$0"`,
    UDP_CLIENT,
  ]);
  try {
    const ready = JSON.parse(await client.waitFor(/ready/)) as { ready: number };
    return { client, pid: ready.ready };
  } catch (err) {
    client.kill("SIGKILL");
    throw err;
  }
}

// One nats-server (Debian's package) on a loopback port, for the tests of NATS publishing: started
// here, ended by its PID.
import { spawn, type ChildProcess } from "node:child_process";
import type { NatsConnection } from "nats";
import { accepts } from "./ports.ts";
import { untilTrue } from "./until.ts";

const NATS_SERVER = "/usr/sbin/nats-server";

/** nats-server on 127.0.0.1:`port` with `args`, once it accepts connections (within `ms`). */
export async function startNatsServer(
  port: number,
  args: string[],
  ms: number,
): Promise<ChildProcess> {
  const child = spawn(NATS_SERVER, ["-a", "127.0.0.1", "-p", String(port), ...args], {
    stdio: "ignore",
  });
  await untilTrue("nats-server to listen", () => accepts(port), ms);
  return child;
}

/** Ends the server by its PID (resumed first, should a test have stopped it) once it exited. */
export async function stopNatsServer(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once("exit", r));
  if (child.pid !== undefined) {
    process.kill(child.pid, "SIGCONT");
    process.kill(child.pid, "SIGKILL");
  }
  await exited;
}

/** Whether a flush of `client` gets through: it is connected again after the server was away. */
export async function flushes(client: NatsConnection | undefined): Promise<boolean> {
  try {
    await client?.flush();
    return true;
  } catch {
    return false;
  }
}

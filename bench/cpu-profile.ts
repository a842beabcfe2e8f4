// Takes a CPU profile of a running Node process through its inspector (started with
// --inspect=HOST:PORT): profiling starts only now, after the process's start (the profiler's
// signals would interrupt the kernel's BPF verifier, which then fails with EAGAIN).
//
//   node bench/cpu-profile.ts PORT SECONDS OUT.cpuprofile
import { writeFileSync } from "node:fs";

const [port = "9229", seconds = "5", out = "profile.cpuprofile"] = process.argv.slice(2);
const targets = (await (await fetch(`http://127.0.0.1:${port}/json/list`)).json()) as {
  webSocketDebuggerUrl: string;
}[];
const url = targets[0]?.webSocketDebuggerUrl;
if (!url) throw new Error(`no inspector target on port ${port}`);
const ws = new WebSocket(url);
await new Promise((resolve, reject) => {
  ws.onopen = resolve;
  ws.onerror = reject;
});
let next = 1;
const waiting = new Map<number, (result: unknown) => void>();
ws.onmessage = (m) => {
  const msg = JSON.parse(String(m.data)) as { id?: number; result?: unknown };
  if (msg.id !== undefined) waiting.get(msg.id)?.(msg.result);
};
const call = (method: string, params: Record<string, unknown> = {}) =>
  new Promise<unknown>((resolve) => {
    const id = next++;
    waiting.set(id, resolve);
    ws.send(JSON.stringify({ id, method, params }));
  });
await call("Profiler.enable");
await call("Profiler.setSamplingInterval", { interval: 200 });
await call("Profiler.start");
process.stdout.write("profiling\n");
await new Promise((r) => setTimeout(r, Number(seconds) * 1000));
const { profile } = (await call("Profiler.stop")) as { profile: unknown };
writeFileSync(out, JSON.stringify(profile));
ws.close();
process.stdout.write("done\n");

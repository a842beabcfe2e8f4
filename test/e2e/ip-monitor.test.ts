// The `ip monitor` children moat watches links and routes with (src/route/ip-command.ts) end
// with the process that started them, even when it is killed with SIGKILL and runs no clean-up.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { NODE, ROOT } from "../helpers/paths.ts";

const STARTER = `
import { spawnIp } from ${JSON.stringify(`${ROOT}src/route/ip-command.ts`)};
const monitor = spawnIp({}, ["monitor", "link"]);
console.log(monitor.pid);
setInterval(() => {}, 1000);
`;

test("an ip monitor ends when the process that started it is killed with SIGKILL", async () => {
  const parent = spawn(
    NODE,
    ["--disable-warning=ExperimentalWarning", "--input-type=module", "-e", STARTER],
    { stdio: ["ignore", "pipe", "inherit"] },
  );
  const pid = await new Promise<number>((resolve, reject) => {
    parent.stdout.once("data", (d: Buffer) => resolve(Number(d.toString().trim())));
    parent.once("exit", (code) => reject(new Error(`the starter exited (${code})`)));
  });
  try {
    // setpriv has exec'd ip by the time the monitor runs
    const end = Date.now() + 3000;
    const cmdline = () => readFileSync(`/proc/${pid}/cmdline`, "utf8").replaceAll("\0", " ");
    while (!cmdline().startsWith("ip monitor") && Date.now() < end)
      await new Promise((r) => setTimeout(r, 50));
    assert.match(cmdline(), /^ip monitor link/);
    const exited = new Promise((r) => parent.once("exit", r));
    parent.kill("SIGKILL");
    await exited;
    const gone = Date.now() + 3000;
    while (existsSync(`/proc/${pid}`) && Date.now() < gone)
      await new Promise((r) => setTimeout(r, 50));
    assert.ok(!existsSync(`/proc/${pid}`), `ip monitor (pid ${pid}) outlived its parent`);
  } finally {
    if (existsSync(`/proc/${pid}`)) process.kill(pid, "SIGTERM");
  }
});

// A follower whose server stays away retries for as long as it runs: each wait between attempts
// must let go of what it hung on the follower's close signal, or a host left without its server
// for a day would pile up tens of thousands of listeners.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PolicyFollower } from "../../src/fleet/index.ts";
import { getEventListeners } from "node:events";
import { createServer, type AddressInfo } from "node:net";

test("retries against a server that is away leave no listener behind", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "moat-fleet-retry-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const lines: string[] = [];
  // a server that hangs up at once: each attempt fails fast, and is counted
  let attempts = 0;
  const server = createServer((s) => {
    attempts++;
    s.destroy();
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  t.after(() => server.close());
  const follower = new PolicyFollower({
    connection: { url: `nats://127.0.0.1:${(server.address() as AddressInfo).port}` },
    host: "h1",
    bucket: "b",
    stateFile: join(dir, "state.json"),
    followed: () => ({}),
    apply: () => Promise.reject(new Error("nothing to apply")),
    fileName: "/etc/moat/policy.yaml",
    log: (line) => lines.push(line),
    retryMs: 10,
  });
  await new Promise((r) => setTimeout(r, 1500));
  // what a wait leaves on the close signal (Node gives no warning for an AbortSignal's listeners)
  const closing = (follower as unknown as { closing: AbortController }).closing.signal;
  const left = getEventListeners(closing, "abort").length;
  await follower.close();
  assert.ok(attempts > 20, `${attempts} attempts: ${lines.join("\n")}`);
  assert.ok(left <= 1, `${left} listeners after ${attempts} attempts`);
});

// moat fleet put against a real nats-server with JetStream: --wait says a revision was superseded
// when the host reported a later one and none on it (it never ran that revision), and a policy
// larger than the server takes is refused with both sizes.
import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect, type KV, type NatsConnection } from "nats";
import { putPolicy } from "../../src/cli/commands/fleet-rollout.ts";
import type { FleetTarget } from "../../src/cli/fleet-target.ts";
import { freePort } from "../helpers/ports.ts";
import { startNatsServer, stopNatsServer } from "../helpers/nats-server.ts";
import { until } from "../helpers/until.ts";

const BUCKET = "moat-policy";
const POLICY = "version: 1\nmode: prevent\ndefaults: { ingress: block, egress: allow }\n";

interface Server {
  nc: NatsConnection;
  kv: KV;
  dir: string;
  target: FleetTarget;
}

/** One nats-server with JetStream (max_payload `maxPayload`), its bucket and a directory. */
async function startServer(t: TestContext, maxPayload: number): Promise<Server> {
  const dir = mkdtempSync(join(tmpdir(), `moat-fleet-put-${process.pid}-`));
  const conf = join(dir, "nats.conf");
  writeFileSync(
    conf,
    `jetstream { store_dir: "${join(dir, "store")}" }\nmax_payload: ${maxPayload}\n`,
  );
  const port = await freePort();
  const server = await startNatsServer(port, ["-c", conf], 20_000);
  t.after(async () => {
    await stopNatsServer(server);
    rmSync(dir, { recursive: true, force: true });
  });
  const nc = await connect({ servers: `nats://127.0.0.1:${port}` });
  t.after(() => nc.close());
  const kv = await nc.jetstream().views.kv(BUCKET, { history: 10 });
  const target = {
    servers: [`nats://127.0.0.1:${port}`],
    stream: "MOAT_EVENTS",
    bucket: BUCKET,
    subject: "moat.events",
  };
  return { nc, kv, dir, target };
}

/** putPolicy as `moat fleet put` runs it: its exit code and what it printed. */
async function put(s: Server, file: string, values: Record<string, string | boolean>) {
  const lines: string[] = [];
  const io = { out: (l: string) => lines.push(l), err: (l: string) => lines.push(l) };
  const rc = await putPolicy(s.nc, s.target, ["web1", file], values, io as never);
  return { rc, lines };
}

test("fleet put --wait: a later revision's report says this one was superseded", async (t) => {
  const s = await startServer(t, 1024 * 1024);
  const first = join(s.dir, "first.yaml");
  const second = join(s.dir, "second.yaml");
  writeFileSync(first, POLICY);
  writeFileSync(second, POLICY.replace("prevent", "detect"));
  const waiting = put(s, first, { wait: "30s" });
  const revision = await until(
    "the first put",
    async () => (await s.kv.get("policy.web1"))?.revision,
  );
  // the host was away: it takes up only the newest revision, and reports that one
  const later = await s.kv.put("policy.web1", POLICY.replace("prevent", "detect"));
  await s.kv.put(
    "status.web1",
    JSON.stringify({
      host: "web1",
      revision: later,
      result: "applied",
      applied_revision: later,
      generation: 2,
      errors: [],
      time: new Date().toISOString(),
    }),
  );
  const { rc, lines } = await waiting;
  assert.deepEqual(lines, [
    `${BUCKET}/policy.web1 revision ${revision}: superseded: web1 took up revision ${later} (applied, generation 2) instead`,
  ]);
  assert.equal(rc, 1);

  // its own report, then a later one: its own is the answer
  const again = put(s, first, { wait: "30s", json: true });
  const own = await until("the third put", async () => {
    const e = await s.kv.get("policy.web1");
    return e && e.revision > later ? e.revision : undefined;
  });
  const report = (revision: number, result: string) =>
    JSON.stringify({
      host: "web1",
      revision,
      result,
      applied_revision: later,
      generation: 2,
      errors: result === "refused" ? ["policy.web1:1:1 no"] : [],
      time: new Date().toISOString(),
    });
  await s.kv.put("status.web1", report(own, "refused"));
  await s.kv.put("status.web1", report(own + 1, "applied"));
  const answered = await again;
  assert.equal(answered.rc, 1);
  const json = JSON.parse(answered.lines[0] ?? "") as {
    status: { revision: number; result: string };
  };
  assert.equal(json.status.revision, own);
  assert.equal(json.status.result, "refused");
});

test("fleet put: a policy larger than the server's max payload names both sizes", async (t) => {
  const s = await startServer(t, 1024);
  const file = join(s.dir, "big.yaml");
  const text = `${POLICY}${"# padding the policy past the server's limit\n".repeat(40)}`;
  writeFileSync(file, text);
  const bytes = Buffer.byteLength(text);
  const { rc, lines } = await put(s, file, {});
  assert.equal(rc, 1);
  assert.deepEqual(lines, [
    `${file}: not written to ${BUCKET}: ${bytes} bytes, more than the server takes (max_payload 1024 bytes)`,
  ]);
});

// A fleet's policy bucket for the tests of a host's policy follower: a real 3-node nats-server
// cluster (nats-cluster.ts) with one host, the bucket opened by the admin, and a wait for the
// host's report on a revision (its follower writes one to its status key after each revision).
import { mkdtempSync, rmSync } from "node:fs";
import type { TestContext } from "node:test";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { JetStreamManager, KV, NatsConnection } from "nats";
import type { FleetStatus } from "../../src/fleet/index.ts";
import { startNatsCluster, type NatsCluster } from "./nats-cluster.ts";
import { until } from "./until.ts";

export const BUCKET = "moat-policy";
export const HOST = "web1";
/** The host's policy key. */
export const KEY = `policy.${HOST}`;

export interface PolicyBucket {
  /** A directory of the test's own (the follower's state goes there). */
  dir: string;
  cluster: NatsCluster;
  /** The bucket, as the admin sees it. */
  kv: KV;
  /** HOST's report on `revision`: its status key, read every 50 ms until it names the revision. */
  reportOn(revision: number): Promise<FleetStatus>;
}

/**
 * The cluster, the bucket and a directory for one test (`moat-fleet-TAG-…`), all gone when the
 * test ends; a wait for a report fails after `reportMs`.
 */
export async function startPolicyBucket(
  t: TestContext,
  tag: string,
  reportMs: number,
): Promise<PolicyBucket> {
  const dir = mkdtempSync(join(tmpdir(), `moat-fleet-${tag}-`));
  let cluster: NatsCluster | undefined;
  let admin: NatsConnection | undefined;
  const close = async () => {
    await admin?.close();
    await cluster?.close();
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    cluster = await startNatsCluster({ hosts: [HOST], bucket: BUCKET, subject: "moat.events" });
    admin = await cluster.connectAdmin();
  } catch (err) {
    await close();
    throw err;
  }
  t.after(close);
  const kv = await admin.jetstream().views.kv(BUCKET, { replicas: 3, history: 5 });
  const reportOn = (revision: number) =>
    until(
      `the report on revision ${revision}`,
      async () => {
        const e = await kv.get(`status.${HOST}`);
        const s = e?.operation === "PUT" ? e.json<FleetStatus>() : null;
        return s && s.revision === revision ? s : undefined;
      },
      reportMs,
      50,
    );
  return { dir, cluster, kv, reportOn };
}

/**
 * The bucket's largest message: `bytes`, or -1 for no limit. On a loaded machine the cluster may
 * briefly count a server as away and answer "no suitable peers for placement": tried again.
 */
export async function setMaxMessage(jsm: JetStreamManager, bytes: number): Promise<void> {
  const stream = `KV_${BUCKET}`;
  const { config } = await jsm.streams.info(stream);
  const until = Date.now() + 20_000;
  for (;;) {
    try {
      await jsm.streams.update(stream, { ...config, max_msg_size: bytes });
      return;
    } catch (err) {
      const placement =
        (err as { api_error?: { err_code?: number } }).api_error?.err_code === 10005;
      if (!placement || Date.now() > until) throw err;
      await new Promise((r) => setTimeout(r, 250));
    }
  }
}

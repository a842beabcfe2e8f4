// A fleet revision that cuts the host off from the fleet's NATS servers (egress blocked on the
// link to them) is reverted by a real moat daemon when its report cannot be written: the policy
// before it runs again, the host reports the revision refused, and takes up the next one.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { KV } from "nats";
import { startMoatLab, type MoatLab } from "../helpers/moat-lab.ts";
import { seedFile, startNatsCluster, type NatsCluster } from "../helpers/nats-cluster.ts";
import { freePort } from "../helpers/ports.ts";
import { sh, status } from "../helpers/netns.ts";
import { until } from "../helpers/until.ts";
import type { FleetStatus } from "../../src/fleet/index.ts";

const BUCKET = "moat-policy";
const HOST = "web1";

/** The host's report on `revision`, once its status key holds it. */
function reportOn(kv: KV, revision: number, ms: number): Promise<FleetStatus> {
  return until(
    `the report on revision ${revision}`,
    async () => {
      const e = await kv.get(`status.${HOST}`);
      const s = e?.operation === "PUT" ? e.json<FleetStatus>() : null;
      return s?.revision === revision ? s : undefined;
    },
    ms,
    250,
  );
}

test("a revision that cuts the host off from the fleet's servers is reverted and reported refused", async (t) => {
  const octet = createHash("sha1").update(`cut${process.pid}`).digest()[0] ?? 1;
  const tag = createHash("sha1").update(`${t.name}${process.pid}`).digest("hex").slice(0, 6);
  const dir = mkdtempSync(join(tmpdir(), `moat-fleet-cut-${process.pid}-`));
  const near = `10.233.${octet}.1`;
  const far = `10.233.${octet}.2`;
  const link = `mc${tag}r`;
  const peer = `mc${tag}b`;
  const ports = [await freePort(), await freePort(), await freePort()];
  const url = `nats://${near}:${ports[0]}`;
  t.after(() => {
    status("ip", ["link", "del", link]);
    rmSync(dir, { recursive: true, force: true });
  });
  const policy = (l: { ifB: string; auditPath: string }, egress: string) => `version: 1
mode: prevent
defaults: { ingress: block, egress: ${egress} }
attach: { interfaces: [${l.ifB}, ${peer}] }
logging: { audit: { path: ${l.auditPath} } }
rules:
  - name: served
    direction: ingress
    action: allow
    layer4: { protocol: tcp, port: [22] }
fleet:
  url: ${url}
  host: ${HOST}
  nkey_seed_file: ${join(dir, "web1.nk")}
  policy: { bucket: ${BUCKET}, state_file: ${join(dir, "state", "fleet-policy.json")}, report_within: 10s }
`;
  let cluster: NatsCluster | undefined;
  t.after(() => cluster?.close());
  let labRef: { ifB: string; auditPath: string } | undefined;
  const lab: MoatLab = await startMoatLab(
    t.name,
    (l) => ((labRef = l), policy(l, "allow")),
    ["tcp:22"],
    {
      beforeDaemon: async (l) => {
        sh("ip", ["link", "add", link, "type", "veth", "peer", "name", peer, "netns", l.b]);
        sh("ip", ["addr", "add", `${near}/30`, "dev", link]);
        sh("ip", ["link", "set", link, "up"]);
        sh("ip", ["-n", l.b, "addr", "add", `${far}/30`, "dev", peer]);
        sh("ip", ["-n", l.b, "link", "set", peer, "up"]);
        cluster = await startNatsCluster({
          hosts: [HOST],
          bucket: BUCKET,
          subject: "moat.events",
          clientHost: near,
          clientPorts: ports,
        });
        seedFile(dir, "web1.nk", cluster.hosts.get(HOST)?.seed ?? "");
      },
    },
  );
  t.after(() => lab.close());
  assert.ok(cluster && labRef);
  const admin = await cluster.connectAdmin();
  t.after(() => admin.close());
  const kv = await admin.jetstream().views.kv(BUCKET, { replicas: 3, history: 10 });
  await lab.daemon.waitFor(/^fleet: following moat-policy\/policy\.web1/);

  const good = await kv.put(`policy.${HOST}`, policy(labRef, "allow"));
  assert.equal((await reportOn(kv, good, 30_000)).result, "applied");

  const cut = await kv.put(`policy.${HOST}`, policy(labRef, "block"));
  const report = await reportOn(kv, cut, 150_000);
  assert.equal(report.result, "refused", lab.daemon.lines.join("\n"));
  assert.equal(report.applied_revision, good);
  assert.match(report.errors.join("\n"), /^policy\.web1:1:1: reverted to the policy before it:/);
  // no report that it was applied got through late (one written before the cut was noticed)
  const reports: FleetStatus[] = [];
  for await (const e of await kv.history({ key: `status.${HOST}` }))
    if (e.operation === "PUT") reports.push(e.json<FleetStatus>());
  assert.deepEqual(
    reports.filter((r) => r.revision === cut).map((r) => r.result),
    ["refused"],
  );
  await lab.auditHas(
    /POLICY APPLIED policy by fleet moat-policy\/policy\.web1 revision \d+ reverted/,
  );

  const next = await kv.put(`policy.${HOST}`, `${policy(labRef, "allow")}# next\n`);
  assert.equal((await reportOn(kv, next, 60_000)).result, "applied");
});

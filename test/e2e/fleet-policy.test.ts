// A moat daemon following its policy from a JetStream key-value bucket on a real 3-node
// nats-server cluster, with the host's own nkey (docs/fleet.md): a new revision is applied
// through the one install path (the scan sees the new rule); a bad one is refused, reported to the
// host's status key with KEY:LINE:COL, and the old policy keeps working; after a restart no
// revision is applied again and the last applied one still runs; the daemon's events reach the
// stream, and `moat fleet events` / `moat fleet status` read them and the status across hosts.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { KV, NatsConnection } from "nats";
import { startMoatLab, type MoatLab } from "../helpers/moat-lab.ts";
import { seedFile, startNatsCluster, type NatsCluster } from "../helpers/nats-cluster.ts";
import { freePort } from "../helpers/ports.ts";
import { MOAT } from "../helpers/paths.ts";
import { sh, status } from "../helpers/netns.ts";
import type { FleetStatus } from "../../src/fleet/index.ts";

const BUCKET = "moat-policy";
const SUBJECT = "moat.events";
const HOST = "web1";

async function until<T>(
  what: string,
  probe: () => T | Promise<T>,
  ms = 20_000,
): Promise<NonNullable<T>> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v) return v as NonNullable<T>;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

interface Setup {
  url: string;
  dir: string;
  ports: number[];
  /** The root-side and the daemon-side address of the link to the cluster. */
  near: string;
  far: string;
  link: string;
}

function policy(
  lab: { ifB: string; auditPath: string },
  s: Setup,
  ports: number[],
  extra = "",
): string {
  return `version: 1
mode: prevent
defaults: { ingress: block, egress: allow }
attach: { interfaces: [${lab.ifB}] }
logging: { audit: { path: ${lab.auditPath} } }
rules:
  - name: served
    direction: ingress
    action: allow
    layer4: { protocol: tcp, port: [${ports.join(", ")}] }
${extra}fleet:
  url: ${s.url}
  host: ${HOST}
  nkey_seed_file: ${join(s.dir, "web1.nk")}
  events: {}
  policy: { bucket: ${BUCKET}, state_file: ${join(s.dir, "state", "fleet-policy.json")} }
`;
}

/** The host's status report and its key-value revision. */
async function statusOf(kv: KV): Promise<{ revision: number; s: FleetStatus } | null> {
  const e = await kv.get(`status.${HOST}`);
  return e && e.operation === "PUT" ? { revision: e.revision, s: e.json<FleetStatus>() } : null;
}

test("a daemon follows its policy key: applies, refuses with line:col, applies each revision once across restarts", async (t) => {
  const octet = createHash("sha1").update(`${process.pid}`).digest()[0] ?? 1;
  const tag = createHash("sha1")
    .update(t.name + process.pid)
    .digest("hex")
    .slice(0, 6);
  const s: Setup = {
    dir: mkdtempSync(join(tmpdir(), "moat-fleet-")),
    ports: [await freePort("127.0.0.1"), await freePort("127.0.0.1"), await freePort("127.0.0.1")],
    near: `10.232.${octet}.1`,
    far: `10.232.${octet}.2`,
    link: `mf${tag}r`,
    url: "",
  };
  s.url = `nats://${s.near}:${s.ports[0]}`;
  t.after(() => {
    status("ip", ["link", "del", s.link]);
    rmSync(s.dir, { recursive: true, force: true });
  });
  const fleetCli = (...args: string[]) =>
    spawnSync(MOAT, ["fleet", ...args, "--server", s.url, "--nkey", join(s.dir, "admin.nk")], {
      encoding: "utf8",
      timeout: 30_000,
    });
  let cluster: NatsCluster | undefined;
  t.after(() => cluster?.close()); // started inside the lab's set-up: closed whatever happens
  let labRef: { ifB: string; auditPath: string } | undefined;
  const lab: MoatLab = await startMoatLab(
    t.name,
    (l) => ((labRef = l), policy(l, s, [22])),
    ["tcp:22,80,8080"],
    {
      // a link from this namespace to the daemon's (not one moat attaches to), the cluster on it
      beforeDaemon: async (l) => {
        sh("ip", [
          "link",
          "add",
          s.link,
          "type",
          "veth",
          "peer",
          "name",
          `mf${tag}b`,
          "netns",
          l.b,
        ]);
        sh("ip", ["addr", "add", `${s.near}/30`, "dev", s.link]);
        sh("ip", ["link", "set", s.link, "up"]);
        sh("ip", ["-n", l.b, "addr", "add", `${s.far}/30`, "dev", `mf${tag}b`]);
        sh("ip", ["-n", l.b, "link", "set", `mf${tag}b`, "up"]);
        cluster = await startNatsCluster({
          hosts: [HOST, "web2"],
          bucket: BUCKET,
          subject: SUBJECT,
          clientHost: s.near,
          clientPorts: s.ports,
        });
        seedFile(s.dir, "web1.nk", cluster.hosts.get(HOST)?.seed ?? "");
        seedFile(s.dir, "admin.nk", cluster.admin.seed);
        const init = fleetCli("init", "--replicas", "3");
        assert.equal(init.status, 0, init.stderr);
        assert.match(
          init.stdout,
          /^created stream MOAT_EVENTS \(moat\.events\.>, 3 replicas, duplicate window 120 s\) and bucket moat-policy$/m,
        );
      },
    },
  );
  t.after(() => lab.close());
  assert.ok(cluster && labRef);
  const l = labRef;
  let admin: NatsConnection | undefined = await cluster.connectAdmin();
  t.after(() => admin?.close());
  const kv = await admin.jetstream().views.kv(BUCKET, { bindOnly: true });
  await lab.daemon.waitFor(/^fleet: following moat-policy\/policy\.web1 \(applied revision 0\)/);

  // a new revision: applied through the install path, reported to the status key
  assert.equal(lab.scan([80]).get(80), "filtered");
  const file = join(s.dir, "next.yaml");
  writeFileSync(file, policy(l, s, [22, 80]));
  const put = fleetCli("put", HOST, file, "--wait", "20s", "--json");
  assert.equal(put.status, 0, put.stdout + put.stderr);
  const r1 = (JSON.parse(put.stdout) as { revision: number }).revision;
  const applied = await until("revision 1's report", async () => {
    const st = await statusOf(kv);
    return st?.s.revision === r1 ? st : null;
  });
  assert.deepEqual((JSON.parse(put.stdout) as { status: FleetStatus }).status, applied.s);
  assert.equal(applied.s.result, "applied");
  assert.equal(applied.s.applied_revision, r1);
  assert.deepEqual(applied.s.errors, []);
  assert.equal(lab.scan([80]).get(80), "open");
  await lab.auditHas(
    new RegExp(
      `POLICY APPLIED policy by fleet moat-policy/policy\\.web1 revision ${r1}: generation \\d+`,
    ),
  );

  // a bad revision: refused with KEY:LINE:COL, the old policy keeps working
  const bad = policy(l, s, [22, 80, 8080]).replace("name: served", "name: Served Ports");
  writeFileSync(file, bad);
  const checked = fleetCli("put", HOST, file);
  assert.equal(checked.status, 1, "moat fleet put checks first");
  assert.match(checked.stderr, /next\.yaml:\d+:\d+ .*\n.*not written to moat-policy: \d+ errors/);
  assert.equal((await kv.get(`policy.${HOST}`))?.revision, r1, "nothing written");
  // written past that check: the host refuses it
  const r2 = await kv.put(`policy.${HOST}`, bad);
  const refused = await until("revision 2's report", async () => {
    const st = await statusOf(kv);
    return st?.s.revision === r2 ? st : null;
  });
  assert.equal(refused.s.result, "refused");
  assert.equal(refused.s.applied_revision, r1, "the last applied revision still runs");
  assert.ok(refused.s.errors.length > 0);
  for (const e of refused.s.errors) assert.match(e, /^policy\.web1:\d+:\d+ /);
  const ports = lab.scan([80, 8080]);
  assert.equal(ports.get(80), "open", "revision 1 keeps working");
  assert.equal(ports.get(8080), "filtered", "revision 2 never went in");

  // a restart: the state file says both were taken up; neither is applied again
  const reportBefore = (await statusOf(kv))?.revision;
  await lab.restart("SIGKILL");
  await lab.daemon.waitFor(
    new RegExp(`^fleet: following moat-policy/policy\\.web1 \\(applied revision ${r1}\\)`),
  );
  assert.equal(
    lab.scan([80]).get(80),
    "open",
    "revision 1 (saved to the policy file) runs after the restart",
  );
  const r3 = await kv.put(`policy.${HOST}`, policy(l, s, [22, 80, 8080]));
  const third = await until("revision 3's report", async () => {
    const st = await statusOf(kv);
    return st?.s.revision === r3 ? st : null;
  });
  assert.equal(third.s.result, "applied");
  // revisions are reported in order: a second take of revision 2 would have reported before 3's
  const history = [];
  for await (const e of await kv.history({ key: `status.${HOST}` })) history.push(e);
  const reports = history.filter((e) =>
    reportBefore === undefined ? true : e.revision > reportBefore,
  );
  assert.deepEqual(
    reports.map((e) => e.json<FleetStatus>().revision),
    [r3],
    "after the restart only the new revision was taken up",
  );
  const audit = lab.audit();
  for (const r of [r1, r3])
    assert.equal(
      audit.split(`by fleet moat-policy/policy.web1 revision ${r}:`).length - 1,
      1,
      `revision ${r} applied once`,
    );
  assert.equal(lab.scan([8080]).get(8080), "open");
  const state = JSON.parse(readFileSync(join(s.dir, "state", "fleet-policy.json"), "utf8")) as {
    applied: number;
  };
  assert.equal(state.applied, r3);

  // the daemon's events reach the stream: moat fleet events and status read them
  let last = "";
  const events = await until("web1's events in the stream", () => {
    const r = fleetCli("events", "--host", HOST, "--json", "--type", "blocked");
    last = `exit ${r.status}: ${r.stderr}`;
    return r.status === 0 && r.stdout.trim() ? r.stdout : null;
  }).catch((err: unknown) => {
    throw new Error(
      `${(err as Error).message}; moat fleet events: ${last}; daemon: ${lab.daemon.lines.filter((x) => x.includes("jetstream") || x.includes("fleet")).join("\n")}`,
    );
  });
  const first = JSON.parse(events.split("\n")[0] ?? "{}") as { host: string; type: string };
  assert.equal(first.host, HOST);
  assert.equal(first.type, "blocked");
  const st = fleetCli("status", "--json");
  assert.equal(st.status, 0, st.stderr);
  const row = JSON.parse(
    st.stdout
      .trim()
      .split("\n")
      .find((x) => x.includes(`"host":"${HOST}"`)) ?? "{}",
  ) as {
    events: number;
    policy_revision: number;
    status: FleetStatus;
  };
  assert.ok(row.events > 0);
  assert.equal(row.policy_revision, r3);
  assert.equal(row.status.applied_revision, r3);
  const text = fleetCli("status");
  assert.match(
    text.stdout,
    new RegExp(`^web1\\t\\d+\\t\\S+\\t${r3}\\t${r3}\\tapplied revision ${r3} `, "m"),
  );

  await admin.close();
  admin = undefined;
});

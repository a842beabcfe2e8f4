// moat's CrowdSec bouncer against CrowdSec's own local API (Debian's crowdsec, unpacked by
// set-up into .tools/crowdsec; the agent off, the central API off): a ban that cscli adds, on an
// address or a range, lands in the dynamic set with its decision's expiry, and leaves it when
// cscli deletes it; the bouncer key is one that cscli made.
import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startCrowdsec } from "../../src/daemon/crowdsec.ts";
import { dynamicSets } from "../../src/daemon/dynamic-sets.ts";
import { crowdsecModel } from "../helpers/crowdsec-model.ts";
import { ROOT } from "../helpers/paths.ts";
import { freePort } from "../helpers/ports.ts";

const BIN = join(ROOT, ".tools/crowdsec/usr/bin");

/** A local API on a free port in its own folder; cscli bound to it. */
async function startLapi(t: TestContext) {
  const dir = mkdtempSync(join(tmpdir(), "moat-lapi-"));
  for (const sub of ["data", "hub", "cfg"]) mkdirSync(join(dir, sub));
  const port = await freePort();
  const config = join(dir, "cfg/config.yaml");
  writeFileSync(join(dir, "hub/.index.json"), "{}");
  writeFileSync(join(dir, "cfg/simulation.yaml"), "simulation: false\n");
  writeFileSync(
    join(dir, "cfg/profiles.yaml"),
    'name: default_ip_remediation\nfilters:\n - Alert.Remediation == true && Alert.GetScope() == "Ip"\ndecisions:\n - type: ban\n   duration: 4h\non_success: break\n',
  );
  writeFileSync(
    config,
    `common: { daemonize: false, log_media: stdout, log_level: warning, working_dir: ${dir} }
config_paths:
  config_dir: ${dir}/cfg/
  data_dir: ${dir}/data/
  simulation_path: ${dir}/cfg/simulation.yaml
  hub_dir: ${dir}/hub/
  index_path: ${dir}/hub/.index.json
  notification_dir: ${dir}/cfg/notifications/
  plugin_dir: ${dir}/plugins/
db_config: { type: sqlite, db_path: ${dir}/data/crowdsec.db, use_wal: false }
api:
  client: { credentials_path: ${dir}/cfg/local_api_credentials.yaml }
  server: { listen_uri: "127.0.0.1:${port}", profiles_path: ${dir}/cfg/profiles.yaml, trusted_ips: [127.0.0.1] }
prometheus: { enabled: false }
`,
  );
  const lapi = spawn(join(BIN, "crowdsec"), ["-c", config, "-no-cs"], {
    cwd: dir,
    stdio: ["ignore", "pipe", "pipe"],
  });
  const output: string[] = [];
  lapi.stdout.on("data", (b: Buffer) => output.push(b.toString()));
  lapi.stderr.on("data", (b: Buffer) => output.push(b.toString()));
  t.after(async () => {
    if (lapi.exitCode === null) {
      const exited = new Promise((r) => lapi.once("exit", r));
      lapi.kill("SIGTERM");
      await exited;
    }
    rmSync(dir, { recursive: true, force: true });
  });
  const url = `http://127.0.0.1:${port}`;
  const end = Date.now() + 30_000;
  for (;;) {
    const up = await fetch(`${url}/v1/decisions/stream`).then(
      (r) => r.status,
      () => 0,
    );
    if (up === 403) break; // listening, and asking for a bouncer key
    if (Date.now() > end || lapi.exitCode !== null)
      throw new Error(`crowdsec's local API did not start:\n${output.join("")}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  const cscli = (...args: string[]) =>
    execFileSync(join(BIN, "cscli"), ["-c", config, ...args], { encoding: "utf8" });
  cscli(
    "machines",
    "add",
    "moat-test",
    "--auto",
    "-f",
    join(dir, "cfg/local_api_credentials.yaml"),
  );
  return { dir, url, cscli };
}

test("the bouncer keeps its set to the bans of CrowdSec's own local API", async (t) => {
  const { dir, url, cscli } = await startLapi(t);
  const keyFile = join(dir, "bouncer.key");
  writeFileSync(keyFile, cscli("bouncers", "add", "moat", "-o", "raw").trim(), { mode: 0o600 });
  const model = crowdsecModel(url, keyFile);
  const logs: string[] = [];
  const sets = dynamicSets({
    dir: join(dir, "store"),
    model: () => model,
    refresh: () => Promise.resolve(),
    generation: () => 1,
    audit: () => {},
    log: (line) => logs.push(line),
  });
  t.after(() => sets.close());
  cscli("decisions", "add", "--ip", "203.0.113.9", "--duration", "1h", "--reason", "test");
  cscli("decisions", "add", "--range", "198.51.100.0/24", "--duration", "30m", "--reason", "test");
  const started = Date.now();
  const bouncer = startCrowdsec({ model: () => model, sets, log: (line) => logs.push(line) });
  t.after(() => bouncer.close());
  bouncer.applied(); // as the daemon calls it once the policy is in

  const entries = () => sets.list()[0]?.entries ?? [];
  const until = async (done: () => boolean, what: string) => {
    const end = Date.now() + 15_000;
    while (!done() && Date.now() < end) await new Promise((r) => setTimeout(r, 100));
    assert.ok(done(), `${what}; entries ${JSON.stringify(entries())}; log:\n${logs.join("\n")}`);
  };
  await until(() => entries().length === 2, "both bans in the set");
  const byEntry = new Map(entries().map((e) => [e.entry, Date.parse(e.expires ?? "")]));
  // each expires with its decision (the API gives the time left, as of its answer)
  const ip = byEntry.get("203.0.113.9") ?? 0;
  const range = byEntry.get("198.51.100.0/24") ?? 0;
  assert.ok(Math.abs(ip - (started + 3_600_000)) < 60_000, `ban on the address ends ${ip}`);
  assert.ok(Math.abs(range - (started + 1_800_000)) < 60_000, `ban on the range ends ${range}`);
  assert.match(logs[0] ?? "", /^crowdsec: set cs: \+2 -0 decisions, 2 entries$/);

  cscli("decisions", "delete", "--ip", "203.0.113.9");
  await until(
    () => entries().length === 1 && entries()[0]?.entry === "198.51.100.0/24",
    "the deleted ban leaves the set",
  );
});

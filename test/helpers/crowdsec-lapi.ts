// CrowdSec's own local API (Debian's crowdsec, unpacked by set-up into .tools/crowdsec; the agent
// off, the central API off) on a free loopback port in its own folder, with cscli bound to it and
// a bouncer key that cscli made; stopped and removed when the test ends.
import type { TestContext } from "node:test";
import { execFileSync, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ROOT } from "./paths.ts";
import { freePort } from "./ports.ts";

const BIN = join(ROOT, ".tools/crowdsec/usr/bin");

export interface Lapi {
  dir: string;
  url: string;
  /** A file holding a bouncer key (mode 600), as `cscli bouncers add` printed it. */
  keyFile: string;
  cscli: (...args: string[]) => string;
}

export async function startLapi(t: TestContext): Promise<Lapi> {
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
  const keyFile = join(dir, "bouncer.key");
  writeFileSync(keyFile, cscli("bouncers", "add", "moat", "-o", "raw").trim(), { mode: 0o600 });
  return { dir, url, keyFile, cscli };
}

// Starts that go wrong, and signals that come while a daemon starts, never open the host: a
// restart whose API cannot listen leaves the pinned programs enforcing; a second `moat run` on
// the same pin directory refuses before it touches the pins of the daemon that runs; SIGTERM,
// SIGHUP and SIGUSR1 during start-up get the daemon's own handling, never the default action
// (death, or Node's inspector on SIGUSR1). Seen from the peer: blocked port 80 never answers.
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import {
  chmodSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { startMoatLab, type MoatLab } from "../helpers/moat-lab.ts";
import { spawnLines, type LineChild } from "../helpers/child.ts";
import { MOAT, NODE, ROOT } from "../helpers/paths.ts";
import type { Lab } from "../helpers/netns.ts";

const policy = (lab: Lab & { auditPath: string }, extra = "") => `version: 1
mode: prevent
defaults: { ingress: block, egress: allow }
attach: { interfaces: [${lab.ifB}] }
logging: { audit: { path: ${lab.auditPath} } }
rules:
  - name: ssh
    direction: ingress
    action: allow
    layer4: { protocol: tcp, port: [22] }
  - name: icmpv6
    direction: ingress
    action: allow
    layer4: { protocol: icmpv6 }
${extra}`;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Another daemon with the lab daemon's arguments (its pin directory and API socket); `env`: what
 * env(1) changes in its environment first.
 */
function daemonLike(lab: MoatLab, env: string[] = []): LineChild {
  return spawnLines("nsenter", [
    `--net=/run/netns/${lab.b}`,
    ...(env.length > 0 ? ["env", ...env] : []),
    MOAT,
    "run",
    "--policy",
    lab.policyPath,
    "--pin-dir",
    lab.pinDir,
    "--api",
    `unix:${lab.apiSocket}`,
    "--history",
    join(lab.dir, "history.db"),
    "--decisions",
    join(lab.dir, "decisions.json"),
  ]);
}

/** Whether a TCP connection from a to b's port (80: blocked by the policy) opens. */
const opens = (lab: MoatLab, port = 80) =>
  lab.inA("nc", ["-z", "-w", "1", lab.v4.b, String(port)], 5000) === 0;

const pins = (lab: MoatLab): string[] =>
  existsSync(lab.pinDir) ? readdirSync(lab.pinDir).sort() : [];

/** A connect to b's port 80 every 10 ms from a, for the whole test. */
async function probe80(lab: MoatLab): Promise<LineChild> {
  const p = spawnLines("ip", [
    "netns",
    "exec",
    lab.a,
    NODE,
    "--disable-warning=ExperimentalWarning",
    `${ROOT}test/helpers/traffic.ts`,
    "probe",
    lab.v4.b,
    "80",
  ]);
  await p.waitFor(/^probing$/);
  return p;
}

async function noneAccepted(p: LineChild): Promise<void> {
  p.kill("SIGTERM");
  const summary = await p.waitFor(/^probes \d+ accepted \d+$/);
  assert.match(summary, / accepted 0$/, `a blocked probe was accepted (${summary})`);
}

/** One lab for every test: each lab costs a daemon start (loading every program). */
let shared: Promise<MoatLab> | undefined;
after(async () => {
  await (await shared?.catch(() => undefined))?.close();
});

/**
 * Runs `body` on the file's lab, its policy file as `policy` writes it and its daemon `running`
 * (started again if a test before left none) or `stopped` (cleanly); the children it hands to
 * `kept` are killed (SIGKILL) when it ends, whatever happened.
 */
async function inLab(
  daemon: "running" | "stopped",
  body: (lab: MoatLab, kept: (child: LineChild) => LineChild) => Promise<void>,
): Promise<void> {
  shared ??= startMoatLab("start-safety", (l) => policy(l));
  const lab = await shared;
  if (readFileSync(lab.policyPath, "utf8") !== policy(lab)) lab.writePolicy(policy(lab));
  if (daemon === "running" && !runs(lab.daemon)) await lab.restart("SIGKILL");
  if (daemon === "stopped" && runs(lab.daemon)) await stopsCleanly(lab.daemon);
  const children: LineChild[] = [];
  try {
    await body(lab, (child) => (children.push(child), child));
  } finally {
    for (const child of children) child.kill("SIGKILL");
    await Promise.all(children.map((c) => c.exited));
  }
}

const runs = (d: LineChild) => d.proc.exitCode === null && d.proc.signalCode === null;

/** Sends `signal` to a daemon, which stops cleanly: exit code 0. */
async function stopsCleanly(d: LineChild, signal: NodeJS.Signals = "SIGTERM"): Promise<void> {
  d.kill(signal);
  assert.equal(await d.exited, 0, `a clean stop: ${d.stderr.join("\n")}`);
}

/** A start that cannot listen: it exits 1, detaches nothing, and the pins (`before`) enforce. */
async function refusedKeepingPins(lab: MoatLab, before: string[]): Promise<void> {
  const next = daemonLike(lab);
  assert.equal(await next.exited, 1, `exits 1: ${next.stderr.join("\n")}`);
  assert.ok(
    !next.lines.some((l) => /detached all programs/.test(l)),
    `nothing detached:\n${next.lines.join("\n")}`,
  );
  assert.deepEqual(pins(lab), before, "the pins are all still there");
  assert.equal(opens(lab), false, "port 80 stays blocked");
}

/** Restarts the lab's daemon (SIGKILL, if one runs): the new one adopts the pinned maps. */
async function restartAdopting(lab: MoatLab): Promise<void> {
  const next = await lab.restart("SIGKILL");
  assert.ok(
    next.lines.some((l) => /adopted pinned maps/.test(l)),
    next.lines.join("\n"),
  );
}

/** Another daemon like the lab's, once its programs are attached (before `moat is running`). */
async function attachedLike(lab: MoatLab, kept: (child: LineChild) => LineChild) {
  const d = kept(daemonLike(lab));
  await d.waitFor(/attached|adopted/, 60_000);
  return d;
}

test(
  "a restart whose API cannot listen (a file at the socket path, a TCP port in use) keeps the pins enforcing",
  { timeout: 180_000 },
  () =>
    inLab("running", async (lab, kept) => {
      const probe = kept(await probe80(lab));
      lab.daemon.kill("SIGKILL");
      await lab.daemon.exited;
      const before = pins(lab);
      assert.ok(before.length > 0, "the killed daemon's pins stay");

      // the socket path is taken by a regular file
      rmSync(lab.apiSocket, { force: true });
      writeFileSync(lab.apiSocket, "not a socket\n");
      await refusedKeepingPins(lab, before);
      rmSync(lab.apiSocket, { force: true });

      // the policy's TCP listener: a port a server of the lab holds already
      const token = join(lab.dir, "token");
      writeFileSync(token, `${"a1".repeat(32)}\n`, { mode: 0o600 });
      lab.writePolicy(policy(lab, `api: { listen: "127.0.0.1:8080", token_file: ${token} }\n`));
      await refusedKeepingPins(lab, before);

      // the next start that can listen takes the pins over
      lab.writePolicy(policy(lab));
      await restartAdopting(lab);
      assert.equal(opens(lab), false, "port 80 blocked");
      await noneAccepted(probe);
    }),
);

test(
  "a second moat run on the same pin directory refuses before it touches the running daemon's pins",
  { timeout: 180_000 },
  () =>
    inLab("running", async (lab, kept) => {
      const probe = kept(await probe80(lab));
      const before = pins(lab);
      const second = kept(daemonLike(lab));
      assert.equal(await second.exited, 1, second.stderr.join("\n"));
      assert.match(
        second.stderr.join("\n"),
        new RegExp(`pid ${lab.daemon.proc.pid}`),
        "names the daemon that runs",
      );
      assert.ok(
        !second.lines.some((l) => /adopted|detached|attached/.test(l)),
        `it touched nothing:\n${second.lines.join("\n")}`,
      );
      assert.equal(lab.daemon.proc.exitCode, null, "the first daemon still runs");
      assert.deepEqual(pins(lab), before, "its pins are all there");
      assert.equal(opens(lab), false, "port 80 blocked");

      // the first daemon's restart without a gap still has its pins to hand over
      await stopsCleanly(lab.daemon, "SIGUSR2");
      assert.deepEqual(pins(lab), before, "handed over: the pins stay");
      assert.equal(opens(lab), false, "port 80 blocked while no daemon runs");
      await restartAdopting(lab);
      await noneAccepted(probe);
    }),
);

test(
  "SIGTERM during start-up stops cleanly once started; SIGHUP during start-up reloads once started",
  { timeout: 180_000 },
  () =>
    inLab("stopped", async (lab, kept) => {
      // SIGTERM once programs are attached, before `moat is running`
      let d = await attachedLike(lab, kept);
      await stopsCleanly(d);
      assert.ok(
        d.lines.some((l) => /detached all programs; bye/.test(l)),
        d.lines.join("\n"),
      );
      assert.ok(!existsSync(lab.pinDir), "a clean stop removes the pins");

      // SIGHUP (systemctl reload right after start): the daemon lives on and reloads
      d = await attachedLike(lab, kept);
      d.kill("SIGHUP");
      await d.waitFor(/^moat is running/, 60_000);
      await d.waitFor(/ applied: generation \d+/, 30_000);
      assert.equal(d.proc.exitCode, null, "still running");
      assert.equal(d.proc.signalCode, null, "not killed by SIGHUP");
      assert.equal(
        d.lines.filter((l) => / applied: generation \d+/.test(l)).length,
        2,
        `the start's policy, then the reload's:\n${d.lines.join("\n")}`,
      );
      assert.equal(opens(lab), false, "port 80 blocked");
      await stopsCleanly(d);
    }),
);

/**
 * Whether Node (not the launcher's shell, nor Node before its first steps, where SIGUSR1 is still
 * the kernel's default) has taken SIGUSR1 in hand: blocked, or caught.
 */
function usr1Taken(pid: number): boolean {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const mask = (field: string) =>
      BigInt(`0x${new RegExp(`^${field}:\\s*([0-9a-f]+)`, "m").exec(status)?.[1] ?? "0"}`);
    return ((mask("SigBlk") | mask("SigCgt")) & 0x200n) !== 0n;
  } catch {
    return false;
  }
}

test(
  "SIGUSR1 during start-up never opens Node's inspector; the audit log is reopened after rotation",
  { timeout: 180_000 },
  () =>
    inLab("stopped", async (lab, kept) => {
      const d = kept(daemonLike(lab));
      const pid = d.proc.pid!;
      // as soon as Node runs, while it loads its modules, and while the programs load
      for (let i = 0; i < 1000 && !usr1Taken(pid); i++) await sleep(1);
      d.kill("SIGUSR1");
      await sleep(200);
      d.kill("SIGUSR1");
      await d.waitFor(/attached|adopted/, 60_000);
      d.kill("SIGUSR1");
      await d.waitFor(/^moat is running/, 60_000);
      await sleep(500);
      assert.equal(d.proc.exitCode, null, "still running");
      assert.deepEqual(
        d.stderr.filter((l) => /Debugger|inspector/i.test(l)),
        [],
        "no inspector was started",
      );
      const ss = spawnSync("ip", ["netns", "exec", lab.b, "ss", "-Hltn"], { encoding: "utf8" });
      assert.ok(!/:9229\b/.test(ss.stdout), `nothing listens on 9229:\n${ss.stdout}`);

      // logrotate: the file moves away, a new one is created, SIGUSR1
      renameSync(lab.auditPath, `${lab.auditPath}.1`);
      writeFileSync(lab.auditPath, "", { mode: 0o600 });
      d.kill("SIGUSR1");
      let written = "";
      for (let i = 0; i < 40 && !written; i++) {
        opens(lab); // a blocked connection: an event for the audit log
        await sleep(250);
        written = readFileSync(lab.auditPath, "utf8");
      }
      assert.notEqual(written, "", "events go to the new audit log");
      await stopsCleanly(d);
    }),
);

test(
  "a compile cache others could write is not used, and the daemon says why; made 0700, it is",
  { timeout: 180_000 },
  () =>
    inLab("stopped", async (lab, kept) => {
      const state = join(lab.dir, "state");
      const cache = join(state, "compile-cache");
      rmSync(state, { recursive: true, force: true }); // the lab's folder, removed with it
      mkdirSync(cache, { recursive: true, mode: 0o700 });
      chmodSync(cache, 0o777);
      // the test runner's own cache (NODE_COMPILE_CACHE) would be used instead
      const env = ["-u", "NODE_COMPILE_CACHE", `MOAT_STATE_DIR=${state}`];
      let d = kept(daemonLike(lab, env));
      await d.waitFor(/^moat is running/, 60_000);
      const warning = new RegExp(
        `^warning: compile cache ${cache}: is open to group or others \\(mode 0777\\); make it 0700 .*; not used`,
      );
      assert.ok(
        d.lines.some((l) => warning.test(l)),
        `the daemon says why:\n${d.lines.join("\n")}`,
      );
      await stopsCleanly(d);
      assert.deepEqual(readdirSync(cache), [], "nothing was written there");

      chmodSync(cache, 0o700);
      d = kept(daemonLike(lab, env));
      await d.waitFor(/^moat is running/, 60_000);
      assert.ok(!d.lines.some((l) => /compile cache/.test(l)), d.lines.join("\n"));
      await stopsCleanly(d);
      assert.notDeepEqual(readdirSync(cache), [], "the daemon's code is kept there");
    }),
);

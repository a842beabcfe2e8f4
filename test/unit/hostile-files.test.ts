// Files others could tamper with are refused, as `moat check`, the API's validate, the audit log,
// the event history and the API token file see them: real FIFOs, /dev/zero, oversized files,
// symlinks and files planted by `nobody`, and the root-owned symlinks a ConfigMap mount uses.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import {
  chmodSync,
  chownSync,
  lchownSync,
  mkdirSync,
  statSync,
  symlinkSync,
  truncateSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { validatePolicyText } from "../../src/daemon/policy-text.ts";
import { AuditLog } from "../../src/observe/audit-log.ts";
import { HistoryStore } from "../../src/observe/history/store.ts";
import { readTokenFile } from "../../src/api/auth.ts";
import { MOAT } from "../helpers/paths.ts";
import { checkCommand } from "../../src/cli/commands/check.ts";
import { scratchDir } from "../helpers/scratch-dir.ts";

const NOBODY = 65534;

/** A directory owned by nobody, as a local user's own directory would be. */
function nobodyDir(parent: string): string {
  const d = join(parent, "nobody");
  mkdirSync(d, { mode: 0o755 });
  chownSync(d, NOBODY, NOBODY);
  return d;
}

function policyWithSet(dir: string, setFile: string): string {
  const path = join(dir, "policy.yaml");
  writeFileSync(
    path,
    [
      "version: 1",
      "mode: detect",
      "sets:",
      `  blocked: { file: ${JSON.stringify(setFile)} }`,
      "rules:",
      "  - name: block-listed",
      "    direction: egress",
      "    action: block",
      "    layer3: { remote: [set:blocked] }",
      "",
    ].join("\n"),
  );
  return path;
}

/** `moat check FILE`, killed after 20 s (a FIFO set file hung it): code, output lines. */
async function check(file: string): Promise<{ code: number | null; out: string[] }> {
  const child = spawn(MOAT, ["check", file], { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  child.stdout.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr.on("data", (d: Buffer) => (out += d.toString()));
  const timer = setTimeout(() => child.kill("SIGKILL"), 20_000);
  const code = await new Promise<number | null>((r) => child.on("close", (c) => r(c)));
  clearTimeout(timer);
  return { code, out: out.split("\n").filter(Boolean) };
}

async function refused(file: string, pattern: RegExp): Promise<void> {
  const r = await check(file);
  assert.equal(r.code, 1, r.out.join("\n"));
  assert.ok(
    r.out.some((l) => pattern.test(l)),
    `expected ${String(pattern)} in:\n${r.out.join("\n")}`,
  );
}

test("a FIFO set file is refused at once, not waited on", async (t) => {
  const d = scratchDir(t, "hostile");
  const fifo = join(d, "list.txt");
  assert.equal(spawnSync("mkfifo", ["-m", "0644", fifo]).status, 0);
  const policy = policyWithSet(d, fifo);
  await refused(policy, /sets\.blocked\.file: cannot read set file .*list\.txt.*is a FIFO/);
  const api = await validatePolicyText(`version: 1\nsets:\n  s: { file: ${fifo} }\n`, policy);
  assert.equal(api.ok, false);
  assert.match(api.errors.join("\n"), /is a FIFO; only a regular file is read/);
});

test("a set file linked to /dev/zero is refused, not read until memory runs out", async (t) => {
  const d = scratchDir(t, "hostile");
  const link = join(d, "zero.txt");
  symlinkSync("/dev/zero", link);
  await refused(policyWithSet(d, link), /zero\.txt': is a character device/);
});

test("a set file over the size limit is refused with the limit", async (t) => {
  const d = scratchDir(t, "hostile");
  const big = join(d, "big.txt");
  writeFileSync(big, "");
  truncateSync(big, 64 * 2 ** 20 + 1);
  await refused(policyWithSet(d, big), /big\.txt': is larger than the limit of 64 MiB/);
});

test("a set file in a directory owned by nobody is refused", async (t) => {
  const d = scratchDir(t, "hostile");
  const nd = nobodyDir(d);
  const list = join(nd, "list.txt");
  writeFileSync(list, "10.0.0.1\n");
  await refused(policyWithSet(d, list), /directory .*\/nobody is owned by uid 65534, not root/);
});

test("a symlink planted by nobody in a sticky directory is not followed", async (t) => {
  const d = scratchDir(t, "hostile");
  const sticky = join(d, "sticky");
  mkdirSync(sticky);
  chmodSync(sticky, 0o1777);
  const real = join(d, "real.txt");
  writeFileSync(real, "10.0.0.1\n");
  const link = join(sticky, "list.txt");
  symlinkSync(real, link);
  lchownSync(link, NOBODY, NOBODY);
  await refused(policyWithSet(d, link), /is a symlink owned by uid 65534, not root/);
});

test("a set file directly in a sticky world-writable directory is refused; below it, accepted", async (t) => {
  const d = scratchDir(t, "hostile");
  const sticky = join(d, "sticky");
  mkdirSync(sticky);
  chmodSync(sticky, 0o1777);
  const flat = join(sticky, "list.txt");
  writeFileSync(flat, "10.0.0.1\n");
  await refused(policyWithSet(d, flat), /its directory .*sticky is writable by group or others/);
  const own = join(sticky, "root-only");
  mkdirSync(own, { mode: 0o755 });
  writeFileSync(join(own, "list.txt"), "10.0.0.1\n");
  const r = await check(policyWithSet(d, join(own, "list.txt")));
  assert.equal(r.code, 0, r.out.join("\n"));
});

test("a set file writable by others, or in a group-writable directory, is refused", async (t) => {
  const d = scratchDir(t, "hostile");
  const list = join(d, "list.txt");
  writeFileSync(list, "10.0.0.1\n", { mode: 0o666 });
  chmodSync(list, 0o666);
  await refused(policyWithSet(d, list), /list\.txt': is writable by group or others \(mode 0666\)/);
  const gw = join(d, "gw");
  mkdirSync(gw);
  chmodSync(gw, 0o775);
  writeFileSync(join(gw, "list.txt"), "10.0.0.1\n");
  await refused(policyWithSet(d, join(gw, "list.txt")), /gw is writable by group or others/);
});

test("root-owned symlinks work, as a Kubernetes ConfigMap mount lays them out", async (t) => {
  const d = scratchDir(t, "hostile");
  const stamp = join(d, "..2026_12_02_05_00_00.1");
  mkdirSync(stamp, { mode: 0o755 });
  writeFileSync(join(stamp, "list.txt"), "10.0.0.1\n192.0.2.0/24\n");
  symlinkSync("..2026_12_02_05_00_00.1", join(d, "..data"));
  symlinkSync("..data/list.txt", join(d, "list.txt"));
  const r = await check(policyWithSet(d, join(d, "list.txt")));
  assert.deepEqual(r.out, [`${join(d, "policy.yaml")}: ok, 1 rule, 1 set`]);
  assert.equal(r.code, 0);
});

test("the audit log is refused in a directory owned by nobody", (t) => {
  const d = scratchDir(t, "hostile");
  const nd = nobodyDir(d);
  assert.throws(() => new AuditLog(join(nd, "audit.log")), /owned by uid 65534, not root/);
});

test("the event history never chmods the target of a symlink nobody planted", (t) => {
  const d = scratchDir(t, "hostile");
  const sticky = join(d, "sticky");
  mkdirSync(sticky);
  chmodSync(sticky, 0o1777);
  const victim = join(d, "victim");
  writeFileSync(victim, "root's file\n", { mode: 0o644 });
  const own = join(sticky, "db");
  mkdirSync(own, { mode: 0o755 });
  chownSync(own, NOBODY, NOBODY);
  const link = join(own, "history.db");
  symlinkSync(victim, link);
  lchownSync(link, NOBODY, NOBODY);
  assert.throws(() => new HistoryStore(link), /owned by uid 65534, not root/);
  assert.equal(statSync(victim).mode & 0o777, 0o644);
});

test("the event history is a regular file, 0600, in a trusted directory", (t) => {
  const d = scratchDir(t, "hostile");
  const path = join(d, "var", "history.db");
  const store = new HistoryStore(path);
  store.close();
  assert.equal(statSync(path).mode & 0o777, 0o600);
  const fifo = join(d, "fifo.db");
  assert.equal(spawnSync("mkfifo", ["-m", "0600", fifo]).status, 0);
  assert.throws(() => new HistoryStore(fifo), /is a FIFO/);
});

test("an API token file in a directory owned by nobody is refused", (t) => {
  const d = scratchDir(t, "hostile");
  const nd = nobodyDir(d);
  const tokens = join(nd, "tokens");
  writeFileSync(tokens, "ops 0123456789abcdef0123\n", { mode: 0o600 });
  assert.throws(() => readTokenFile(tokens), /owned by uid 65534, not root/);
  const fifo = join(d, "tokens.fifo");
  assert.equal(spawnSync("mkfifo", ["-m", "0600", fifo]).status, 0);
  assert.throws(() => readTokenFile(fifo), /is a FIFO/);
});

/** `moat check` in-process (faster than a child): its exit code and lines. */
async function checkHere(path: string): Promise<{ code: number; lines: string[] }> {
  const lines: string[] = [];
  const io = { out: (l: string) => lines.push(l), err: (l: string) => lines.push(l) };
  const code = await checkCommand.run({ values: {}, positionals: [path] }, io);
  return { code, lines };
}

test("moat check refuses the audit log, history and token file paths the daemon would", async (t) => {
  const d = scratchDir(t, "hostile");
  const nd = nobodyDir(d);
  const fifo = join(d, "tokens");
  assert.equal(spawnSync("mkfifo", ["-m", "0600", fifo]).status, 0);
  const link = join(nd, "history.db");
  symlinkSync(join(d, "victim"), link);
  lchownSync(link, NOBODY, NOBODY);
  const policy = join(d, "policy.yaml");
  writeFileSync(
    policy,
    [
      "version: 1",
      "mode: detect",
      "logging:",
      `  audit: { path: ${join(nd, "audit.log")} }`,
      `  history: { path: ${link} }`,
      "api:",
      "  listen: 127.0.0.1:9443",
      `  token_file: ${fifo}`,
      "",
    ].join("\n"),
  );
  const r = await checkHere(policy);
  assert.equal(r.code, 1, r.lines.join("\n"));
  assert.deepEqual(r.lines, [
    `${policy}:4:10 logging.audit: audit log ${join(nd, "audit.log")}: directory ${nd} is owned by uid 65534, not root`,
    `${policy}:5:12 logging.history: warning: event history ${link}: directory ${nd} is owned by uid 65534, not root (moat runs without its event history)`,
    `${policy}:7:3 api: API token file ${fifo}: is a FIFO; only a regular file is read`,
    `${policy}: 2 errors, 1 warning`,
  ]);
  // a missing directory moat would create is fine
  writeFileSync(
    policy,
    `version: 1\nmode: detect\nlogging:\n  audit: { path: ${join(d, "new", "audit.log")} }\n`,
  );
  assert.deepEqual((await checkHere(policy)).lines, [`${policy}: ok, 0 rules, 0 sets`]);
});

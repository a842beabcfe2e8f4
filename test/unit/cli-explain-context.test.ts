// `moat explain` with the facts the socket hooks and the route check add: --process, --interface,
// --tunnel. Fields left out are unknown, and a rule that needs one defers. The first case runs the
// real binary; the others run the same command in-process (a Node start costs a second).

import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { parseCommandArgs, UsageError } from "../../src/cli/command.ts";
import { explainCommand } from "../../src/cli/commands/explain.ts";

interface Run {
  code: number | null;
  stdout: string[];
  stderr: string;
}

function binary(...args: string[]): Run {
  const run = spawnSync("bin/moat", args, { encoding: "utf8" });
  return { code: run.status, stdout: run.stdout.split("\n").filter(Boolean), stderr: run.stderr };
}

/** As cli/main.ts runs a command: usage errors print "moat: ..." and exit 2. */
async function moat(...args: string[]): Promise<Run> {
  const stdout: string[] = [];
  const stderr: string[] = [];
  const io = { out: (l: string) => stdout.push(l), err: (l: string) => stderr.push(l) };
  try {
    const [, ...rest] = args;
    const code = await explainCommand.run(parseCommandArgs(explainCommand, rest), io);
    return { code, stdout, stderr: stderr.join("\n") };
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    return { code: err.exitCode, stdout, stderr: `moat: ${err.message}` };
  }
}

const FILE = "test/fixtures/policies/process-rules.yaml";
const OUT = ["tcp", "10.0.0.1:40000", "->", "1.2.3.4:443", "--direction", "egress"];
const CONNECTION = "connection: egress tcp 10.0.0.1:40000 -> 1.2.3.4:443 (local -> remote)";

test("--process: the process rule decides; user 0 is named from /etc/passwd", async () => {
  const result = binary(
    "explain",
    FILE,
    ...OUT,
    "--process",
    "path=/usr/bin/curl,name=curl,user=0",
  );
  assert.equal(result.code, 0);
  assert.deepEqual(result.stdout, [
    CONNECTION,
    "process: path=/usr/bin/curl name=curl user=0 (root)",
    "verdict: allowed",
    "action: allow",
    "rule: curl-as-root",
    "mode: prevent",
    "reason: rule curl-as-root (line 6): tcp port 443, process /usr/bin/curl, user root",
  ]);
});

test("--process with a user name: the uid is looked up, and the rule matches by name", async () => {
  const result = await moat("explain", FILE, ...OUT, "--process", "path=/usr/bin/curl,user=root");
  assert.equal(result.stdout[1], "process: path=/usr/bin/curl user=0 (root)");
  assert.equal(result.stdout[4], "rule: curl-as-root");
});

test("container fields: id prefix glob and the familiar image name", async () => {
  const result = await moat(
    "explain",
    FILE,
    ...OUT,
    "--process",
    "path=/usr/sbin/nginx,user=0,cgroup=/system.slice/docker-3f2a9c.scope",
    "--process",
    "container.id=3f2a9c,container.name=web,container.image=docker.io/library/nginx:1.27",
  );
  assert.deepEqual(result.stdout.slice(1), [
    "process: path=/usr/sbin/nginx user=0 (root) cgroup=/system.slice/docker-3f2a9c.scope container.id=3f2a9c container.name=web container.image=docker.io/library/nginx:1.27",
    "verdict: allowed",
    "action: allow",
    "rule: web-containers",
    "mode: prevent",
    "reason: rule web-containers (line 11): container 3f2a9c, container image docker.io/library/nginx:1.27",
  ]);
});

test("--interface with --tunnel decides an interface rule; without --tunnel it is not a tunnel", async () => {
  const process = ["--process", "path=/usr/bin/wget,user=0,container=none"];
  const vpn = await moat("explain", FILE, ...OUT, ...process, "--interface", "wg0", "--tunnel");
  assert.deepEqual(vpn.stdout.slice(2), [
    "interface: wg0, tunnel",
    "verdict: allowed",
    "action: allow",
    "rule: vpn-only",
    "mode: prevent",
    "reason: rule vpn-only (line 15): interface wg0, tunnelled",
  ]);
  const plain = await moat("explain", FILE, ...OUT, ...process, "--interface", "wg0");
  assert.deepEqual(plain.stdout.slice(2, 5), [
    "interface: wg0, not a tunnel",
    "verdict: blocked",
    "action: block",
  ]);
});

test("--process none (a forwarded packet): no process rule matches, the interface rule decides", async () => {
  const vpn = await moat(
    "explain",
    FILE,
    ...OUT,
    "--process",
    "none",
    "--interface",
    "wg0",
    "--tunnel",
  );
  assert.deepEqual(vpn.stdout, [
    CONNECTION,
    "process: none (no process on this host owns it)",
    "interface: wg0, tunnel",
    "verdict: allowed",
    "action: allow",
    "rule: vpn-only",
    "mode: prevent",
    "reason: rule vpn-only (line 15): interface wg0, tunnelled",
  ]);
  const plain = await moat("explain", FILE, ...OUT, "--process", "none", "--interface", "eth0");
  assert.deepEqual(plain.stdout.slice(3, 6), [
    "verdict: blocked",
    "action: block",
    "rule: default",
  ]);
});

test("fields left out are unknown: the rules that need them defer", async () => {
  const result = await moat("explain", FILE, ...OUT, "--process", "path=/usr/bin/wget");
  assert.deepEqual(result.stdout, [
    CONNECTION,
    "process: path=/usr/bin/wget",
    "verdict: deferred",
    "rule: web-containers",
    "needs: container, interface",
    "reason: cannot decide without container, interface: rule web-containers (line 11), vpn-only (line 15) may match; allowed by web-containers, else allowed by vpn-only, else blocked by default",
    "possible: allowed by web-containers (rule web-containers (line 11): if container match)",
    "possible: allowed by vpn-only (rule vpn-only (line 15): if interface match)",
    "possible: blocked by default (no rule matched; defaults.egress = block)",
  ]);
});

test("bad --process and --interface arguments are usage errors", async () => {
  const unknown = await moat("explain", FILE, ...OUT, "--process", "usr=0");
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /--process: expected KEY=VALUE with KEY one of pid, path, name/);
  const twice = await moat("explain", FILE, ...OUT, "--process", "user=0", "--process", "user=1");
  assert.match(twice.stderr, /--process: 'user' is given twice/);
  const relative = await moat("explain", FILE, ...OUT, "--process", "path=curl");
  assert.match(relative.stderr, /--process: path 'curl' must start with '\/'/);
  const both = await moat("explain", FILE, ...OUT, "--tunnel", "--no-tunnel");
  assert.match(both.stderr, /--tunnel and --no-tunnel contradict each other/);
});

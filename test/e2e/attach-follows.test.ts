// Attachments follow the host and the policy: a veth made after the daemon started gets the
// programs (tc ingress, as `ingress: auto` chooses for a veth; a blocked port on it is dropped), deleting it releases them (links closed, pins
// removed), and a reload that changes attach.interfaces (or an entry's ingress hook) attaches and
// detaches (the socket hooks too, when attach.cgroup changes), seen by real clients in the lab.
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { existsSync, readdirSync, readFileSync, readlinkSync } from "node:fs";
import { cgroupForTest, startCgroupLab } from "../helpers/cgroup-lab.ts";
import { runIn } from "../helpers/cgroup-run.ts";
import { startMoatLab, type MoatLab } from "../helpers/moat-lab.ts";
import { labPinDir, sh, status, type Lab } from "../helpers/netns.ts";
import { ROOT } from "../helpers/paths.ts";
import { until } from "../helpers/until.ts";

/** A test object with a plain XDP program (bpf/test/addon_attach.bpf.c). */
const ADDON_OBJECT = `${ROOT}build/bpf/test/addon_attach.bpf.o`;

function policy(lab: Lab & { auditPath: string }, interfaces: string): string {
  return `version: 1
mode: prevent
defaults: { ingress: allow, egress: allow }
attach: { interfaces: ${interfaces} }
rules:
  - name: no-8080
    direction: ingress
    action: block
    layer4: { protocol: tcp, port: [8080] }
  - name: no-9999
    direction: ingress
    action: block
    layer4: { protocol: udp, port: [9999] }
`;
}

/**
 * Datagrams sent from a to b:9999 as fast as python3 can, counted where they arrive, while
 * `during` runs: a port the policy blocks, so any that arrive crossed an interface with no ingress
 * program.
 */
async function leakedDuring(lab: MoatLab, during: () => Promise<void>): Promise<number> {
  const sink = spawn("ip", ["netns", "exec", lab.b, "python3", "-c", SINK]);
  const sinkOut: string[] = [];
  sink.stdout.on("data", (d: Buffer) => sinkOut.push(d.toString()));
  await new Promise<void>((resolve) => sink.stdout.once("data", () => resolve()));
  const flood = spawn("ip", ["netns", "exec", lab.a, "python3", "-c", FLOOD, lab.v4.b]);
  try {
    await during();
  } finally {
    flood.kill("SIGTERM");
    await once(flood, "exit");
    await new Promise((r) => setTimeout(r, 200)); // datagrams still in flight
    sink.kill("SIGTERM");
    await once(sink, "exit");
  }
  const counts = sinkOut.join("").trim().split("\n");
  return Number(counts.at(-1));
}

const SINK = `
import signal, socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 9999))
n = 0
def done(*_):
    print(n, flush=True)
    sys.exit(0)
signal.signal(signal.SIGTERM, done)
print("ready", flush=True)
while True:
    s.recv(64)
    n += 1
`;

const FLOOD = `
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
while True:
    s.sendto(b"x", (sys.argv[1], 9999))
`;

/** curl's exit status: 0 answered, 28 timed out (dropped), 7 refused. */
const probe = (lab: MoatLab, ip: string, port: number) =>
  lab.curl(`http://${ip}:${port}/`, ["--max-time", "2"]).status;

const pinDir = (lab: Lab) => labPinDir(lab.tag);

/** Link ids named by the daemon's "attached PROGRAM to NAME ..." lines. */
function linkIds(lab: MoatLab, name: string): number[] {
  return lab.daemon.lines
    .filter((l) => l.startsWith("attached ") && l.includes(` to ${name} `))
    .map((l) => Number(/, link (\d+)/.exec(l)?.[1]));
}

test("a reload that sets or drops attach.cgroup attaches or releases the socket hooks", async (t) => {
  const cg = cgroupForTest(t, "attachcg");
  const egress = (l: Lab, cgroup: string) => `version: 1
mode: prevent
defaults: { ingress: allow, egress: allow }
attach: { interfaces: [${l.ifB}]${cgroup} }
rules:
  - { name: no-9000, direction: egress, action: block, layer4: { protocol: tcp, port: [9000] } }
`;
  const lab = await startCgroupLab(cg, "attach-cgroup", (l) => egress(l, ""), ["tcp:9000"]);
  /** connect() from the cgroup: the errno name, or "timeout" (the SYN dropped at tc). */
  const connect = () => {
    const r = runIn(lab.b, cg.dir, [
      "python3",
      "-c",
      `import socket, errno\ntry:\n  socket.create_connection(("${lab.v4.a}", 9000), timeout=2)\n  print("connected")\nexcept socket.timeout:\n  print("timeout")\nexcept OSError as e:\n  print(errno.errorcode.get(e.errno, e))`,
    ]);
    assert.equal(r.status, 0, r.stderr);
    return r.stdout.trim();
  };
  assert.equal(connect(), "timeout", "no socket hooks: the packet hook drops the SYN");

  lab.writePolicy(egress(lab, `, cgroup: ${cg.cgroup}`));
  await lab.daemon.waitFor(/^attached moat_connect4 to .* connect4 cgroup/);
  await lab.daemon.waitFor(/applied: generation 2/);
  assert.equal(connect(), "EPERM", "the connect hook refuses at once");

  lab.writePolicy(egress(lab, ""));
  await lab.daemon.waitFor(/^released moat_connect4 from .*attach\.cgroup changed/);
  await lab.daemon.waitFor(/applied: generation 3/);
  assert.equal(connect(), "timeout", "released: back to the packet hook");
});

/**
 * One lab (and daemon) for the tests below (the cgroup test above has a lab of its own): each
 * start costs a program load.
 * It starts with no interface of its own selected (the reload test's start); the others select
 * theirs with a reload (set()).
 */
let shared: Promise<MoatLab> | undefined;
after(async () => {
  await (await shared?.catch(() => undefined))?.close();
});
const labOf = () => (shared ??= startMoatLab("attach-follows", (l) => policy(l, `[mt${l.tag}zz]`)));

/** The generation the daemon applied last. */
function generationOf(lab: MoatLab): number {
  const last = lab.daemon.lines.findLast((l) => / applied: generation \d+/.test(l)) ?? "";
  return Number(/ applied: generation (\d+)/.exec(last)?.[1]);
}

/**
 * Reloads the policy with `interfaces` selected; resolves once the daemon printed each of `wait`
 * and applied it (the next generation).
 */
async function set(lab: MoatLab, interfaces: string, wait: RegExp[] = []): Promise<void> {
  const next = generationOf(lab) + 1;
  lab.writePolicy(policy({ ...lab, auditPath: lab.auditPath }, interfaces));
  for (const w of wait) await lab.daemon.waitFor(w);
  await lab.daemon.waitFor(new RegExp(` applied: generation ${next},`));
}

/** The lab with LATER's interfaces selected, and its own veth's programs attached (tc: auto). */
async function withLater(): Promise<MoatLab> {
  const lab = await labOf();
  if (
    readFileSync(lab.policyPath, "utf8") !==
    policy({ ...lab, auditPath: lab.auditPath }, LATER(lab))
  )
    await set(lab, LATER(lab));
  const pin = `${pinDir(lab)}/link_tc-ingress_${lab.ifB}`;
  await until(`${pin} pinned`, () => (existsSync(pin) ? true : undefined), 10_000, 50);
  return lab;
}

/**
 * The lab's veth (auto), veths made later whose names start mt<tag>v (auto), and those whose
 * names start mt<tag>x (XDP forced: another XDP program on one is what keeps moat's off).
 */
const LATER = (l: Lab) => `[${l.ifB}, "mt${l.tag}v*", { name: "mt${l.tag}x*", ingress: xdp }]`;

test("a reload that changes attach.interfaces attaches and detaches", async () => {
  // the lab's start: no interface of its own selected
  const lab = await labOf();
  assert.equal(generationOf(lab), 1, "this test runs on the lab's first policy");
  const reload = (interfaces: string, wait: RegExp[]) => set(lab, interfaces, wait);
  assert.equal(probe(lab, lab.v4.b, 8080), 0, "nothing attached: 8080 answers");

  // XDP would cost a container veth most of its throughput: its entry can ask for tc
  await reload(`[{ name: ${lab.ifB}, ingress: tc }]`, [
    new RegExp(`^attached moat_tc_ingress to ${lab.ifB} \\(ifindex \\d+\\) tc-ingress tcx`),
  ]);
  assert.equal(probe(lab, lab.v4.b, 8080), 28, "tc ingress drops 8080");
  assert.equal(probe(lab, lab.v4.b, 80), 0, "tc ingress passes 80");
  await lab.daemon.waitFor(/BLOCKED ingress tcp .*:8080 on /);

  await reload(`[{ name: ${lab.ifB}, ingress: xdp }]`, [
    // the new hook first, then the old one goes
    new RegExp(`^attached moat_xdp_ingress to ${lab.ifB} .* \\(ingress: xdp\\)`),
    new RegExp(`^released moat_tc_ingress from ${lab.ifB} .*ingress hook now xdp`),
  ]);
  assert.equal(probe(lab, lab.v4.b, 8080), 28, "xdp drops 8080");

  // a plain name: moat chooses, and for a veth that is tc
  await reload(`[${lab.ifB}]`, [
    new RegExp(`^attached moat_tc_ingress to ${lab.ifB} .* \\(auto: veth -> tc\\)`),
    new RegExp(`^released moat_xdp_ingress from ${lab.ifB} .*ingress hook now tc`),
  ]);
  assert.equal(probe(lab, lab.v4.b, 8080), 28, "tc drops 8080");

  await reload(`[mt${lab.tag}zz]`, [
    new RegExp(`^released moat_tc_ingress from ${lab.ifB} .*no longer selects it`),
  ]);
  assert.equal(probe(lab, lab.v4.b, 8080), 0, "detached: 8080 answers again");
  assert.ok(!existsSync(`${pinDir(lab)}/link_tc-ingress_${lab.ifB}`), "its pin is removed");
});

test("a veth made after start gets the programs; deleting it releases them", async () => {
  const lab = await withLater();
  const tag = lab.tag;
  const late = `mt${tag}v1`;
  const peer = `mt${tag}w1`;
  const octet = parseInt(tag.slice(0, 2), 16);
  const [a, b] = [`10.232.${octet}.1`, `10.232.${octet}.2`];
  try {
    sh("ip", ["link", "add", late, "netns", lab.b, "type", "veth", "peer", peer, "netns", lab.a]);
    sh("ip", ["-n", lab.b, "addr", "add", `${b}/24`, "dev", late]);
    sh("ip", ["-n", lab.a, "addr", "add", `${a}/24`, "dev", peer]);
    sh("ip", ["-n", lab.b, "link", "set", late, "up"]);
    sh("ip", ["-n", lab.a, "link", "set", peer, "up"]);
    await lab.daemon.waitFor(
      new RegExp(`^attached moat_tc_ingress to ${late} .* tc-ingress tcx \\(auto: veth -> tc\\)`),
    );
    await lab.daemon.waitFor(new RegExp(`^attached moat_tc_egress to ${late} `));

    assert.equal(probe(lab, b, 80), 0, "an allowed port answers through the new veth");
    assert.equal(probe(lab, b, 8080), 28, "the blocked port is dropped on the new veth");
    await lab.daemon.waitFor(new RegExp(`BLOCKED ingress tcp .* -> ${b}:8080 on ${late}`));
    const pins = [
      `${pinDir(lab)}/link_tc-ingress_${late}`,
      `${pinDir(lab)}/link_tc-egress_${late}`,
    ];
    for (const p of pins) assert.ok(existsSync(p), `${p} pinned`);
    const ids = linkIds(lab, late);
    assert.equal(ids.length, 2);

    sh("ip", ["-n", lab.b, "link", "del", late]);
    await lab.daemon.waitFor(new RegExp(`^released moat_tc_ingress from ${late} .*gone`));
    await lab.daemon.waitFor(new RegExp(`^released moat_tc_egress from ${late} `));
    for (const p of pins) assert.ok(!existsSync(p), `${p} removed`);
    for (const id of ids)
      assert.notEqual(
        status("bpftool", ["link", "show", "id", String(id)]),
        0,
        `link ${id} closed`,
      );
    // the lab's own interface keeps its programs
    assert.equal(probe(lab, lab.v4.b, 8080), 28, "8080 still dropped on the lab's veth");
  } finally {
    status("ip", ["-n", lab.b, "link", "del", late]); // if the test failed before it did
  }
});

test("an interface that cannot be attached is warned about once, the rest keeps working", async () => {
  const lab = await withLater();
  const tag = lab.tag;
  // XDP forced (LATER's mt<tag>x*): another XDP program on the interface keeps moat's off
  const [busy, peer] = [`mt${tag}x3`, `mt${tag}w3`];
  try {
    // another XDP program, attached through netlink, excludes moat's XDP link (EBUSY); it is
    // attached under a name moat does not select, then renamed into the pattern
    sh("ip", [
      "link",
      "add",
      "tmpbusy",
      "netns",
      lab.b,
      "type",
      "veth",
      "peer",
      peer,
      "netns",
      lab.a,
    ]);
    sh("ip", [
      "-n",
      lab.b,
      "link",
      "set",
      "dev",
      "tmpbusy",
      "xdpgeneric",
      "obj",
      ADDON_OBJECT,
      "sec",
      "xdp",
    ]);
    sh("ip", ["-n", lab.b, "link", "set", "dev", "tmpbusy", "name", busy]);
    await lab.daemon.waitFor(new RegExp(`^warning: cannot attach to ${busy}: `));
    // more link events on it: no new attempt, no new warning
    for (const state of ["up", "down", "up"]) sh("ip", ["-n", lab.b, "link", "set", busy, state]);
    await new Promise((r) => setTimeout(r, 1000));
    const warnings = lab.daemon.lines.filter((l) =>
      l.startsWith(`warning: cannot attach to ${busy}`),
    );
    assert.equal(warnings.length, 1, warnings.join("\n"));
    assert.deepEqual(linkIds(lab, busy), [], "nothing of moat's is left on it");
    assert.equal(probe(lab, lab.v4.b, 8080), 28, "the lab's veth is still judged");
  } finally {
    status("ip", ["-n", lab.b, "link", "del", busy]);
  }
});

/** Processes whose parent is `pid` (and theirs), by /proc. */
function descendants(pid: number): { pid: number; cmdline: string }[] {
  const out: { pid: number; cmdline: string }[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (ppid !== pid) continue;
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, "utf8").split("\0").join(" ").trim();
      out.push({ pid: Number(entry), cmdline }, ...descendants(Number(entry)));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

test("the daemon follows links from its own rtnetlink socket: no monitor process", async () => {
  const lab = await withLater();
  const pid = lab.daemon.proc.pid ?? 0;
  const monitors = descendants(pid).filter((p) => /\bmonitor\b/.test(p.cmdline));
  assert.deepEqual(monitors, []);
  // its own sockets' inodes, and /proc's table of netlink sockets: family 0 is NETLINK_ROUTE,
  // Groups is the bitmask of the first 32 multicast groups (bit 0: RTNLGRP_LINK)
  const inodes = new Set(
    readdirSync(`/proc/${pid}/fd`).flatMap((fd) => {
      try {
        return [/^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`))?.[1] ?? ""];
      } catch {
        return [];
      }
    }),
  );
  const linkWatchers = readFileSync(`/proc/${pid}/net/netlink`, "utf8")
    .split("\n")
    .slice(1)
    .map((line) => line.trim().split(/\s+/))
    .filter((f) => f[1] === "0" && (parseInt(f[3] ?? "0", 16) & 1) === 1 && inodes.has(f[9] ?? ""));
  assert.ok(linkWatchers.length > 0, "the daemon holds an rtnetlink socket in the link group");
});

test("switching an interface's ingress hook (tc <-> xdp) leaves no moment unjudged", async () => {
  const lab = await withLater();
  const reload = (interfaces: string) => set(lab, interfaces);
  const from = lab.daemon.lines.length; // what the tests before printed is not this test's
  const leaked = await leakedDuring(lab, async () => {
    for (let i = 0; i < 3; i++) {
      await reload(`[{ name: ${lab.ifB}, ingress: tc }]`);
      await reload(`[{ name: ${lab.ifB}, ingress: xdp }]`);
    }
  });
  assert.equal(leaked, 0, "datagrams to the blocked port arrived during the switches");
  const printed = lab.daemon.lines.slice(from);
  assert.ok(printed.some((l) => /BLOCKED ingress udp .*:9999 on /.test(l)));
  assert.ok(printed.some((l) => /released moat_tc_ingress .*ingress hook now xdp/.test(l)));
  assert.equal(probe(lab, lab.v4.b, 8080), 28, "xdp drops 8080 after the switches");
});

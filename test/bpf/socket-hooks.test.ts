// The socket hooks through real connect() and sendto() calls under the attached cgroup, where
// what the caller names is not what the kernel sends: the unspecified address (the kernel sends
// to loopback), a socket bound to the any-address (its local address is chosen later), and an
// unconnected udp socket used by another process or user than the one that sent first. Loopback
// and process cases run in a network namespace with no route out ("passed": ENETUNREACH or
// ECONNREFUSED, "EPERM": refused by the hook); the bound-socket case runs through a veth pair
// whose host end has the tc hook.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { parsePolicy } from "../../src/config/index.ts";
import { Attribution } from "../../src/attribution/index.ts";
import { Datapath } from "../../src/datapath/datapath.ts";
import { listInterfaces, selectInterfaces } from "../../src/datapath/interfaces.ts";
import { compilePolicy } from "../../src/policy/compile/policy-image.ts";
import { readProcessUniverse } from "../../src/host/process-universe.ts";
import { testCgroup, type TestCgroup } from "../helpers/cgroup-run.ts";

const ns = `fixsock-${process.pid}`;
const HOST_IF = "fixsock-h";
const PEER_IF = "fixsock-p";
const HOST = "10.233.91.1";
const PEER = "10.233.91.2";

let cg: TestCgroup;
let dp: Datapath;
const attribution = new Attribution();

function apply(rules: string): void {
  const text = `version: 1
mode: prevent
defaults: { ingress: allow, egress: allow }
attach: { cgroup: ${cg.cgroup} }
rules:
${rules}`;
  const model = parsePolicy(text, "p.yaml");
  dp.apply(compilePolicy(model, readProcessUniverse(model, attribution)));
}

/** python3 running `code` in the test cgroup; in the namespace unless `host`. */
function py(code: string, host = false): string {
  const enter = host ? [] : ["nsenter", `--net=/run/netns/${ns}`];
  const r = spawnSync(
    enter[0] ?? "sh",
    [
      ...enter.slice(1),
      ...(host ? [] : ["sh"]),
      "-c",
      `echo $$ > ${cg.dir}/cgroup.procs && exec "$@"`,
      "sh",
      "python3",
      "-c",
      `import socket, os, sys
def outcome(f):
    try:
        f()
        return "passed"
    except PermissionError:
        return "EPERM"
    except TimeoutError:
        return "dropped"
    except OSError:
        return "passed"
${code}`,
    ],
    { encoding: "utf8", timeout: 20_000 },
  );
  return r.stdout.trim() || `no output: ${r.stderr}`;
}

function cleanup(): void {
  const steps = [
    () => dp?.stop(),
    () => spawnSync("ip", ["link", "del", HOST_IF]),
    () => spawnSync("ip", ["netns", "del", ns]),
    () => cg?.remove(),
  ];
  for (const step of steps) {
    try {
      step();
    } catch {
      // a cgroup still busy is swept by the next run
    }
  }
}

before(() => {
  try {
    cg = testCgroup("fixsock");
    execFileSync("ip", ["netns", "add", ns]);
    execFileSync("ip", ["-n", ns, "link", "set", "lo", "up"]);
    execFileSync("ip", ["link", "add", HOST_IF, "type", "veth", "peer", "name", PEER_IF]);
    execFileSync("ip", ["link", "set", PEER_IF, "netns", ns]);
    execFileSync("ip", ["addr", "add", `${HOST}/30`, "dev", HOST_IF]);
    execFileSync("ip", ["link", "set", HOST_IF, "up"]);
    execFileSync("ip", ["-n", ns, "addr", "add", `${PEER}/30`, "dev", PEER_IF]);
    execFileSync("ip", ["-n", ns, "link", "set", PEER_IF, "up"]);
    const nics = selectInterfaces([HOST_IF], listInterfaces()).map((n) => ({
      ...n,
      ingress: "tc" as const,
    }));
    dp = Datapath.start({ interfaces: nics, pinRoot: null, cgroup: cg.dir });
  } catch (err) {
    cleanup();
    throw err;
  }
});

after(cleanup);

test("connect() and sendto() to the unspecified address are judged as the loopback address the kernel sends to", () => {
  apply(`  - { name: no-lo-tcp, direction: egress, action: block, layer3: { remote: [127.0.0.1, "::1"] }, layer4: { protocol: tcp, port: [8081] } }
  - { name: no-lo-udp, direction: egress, action: block, layer3: { remote: [127.0.0.1, "::1"] }, layer4: { protocol: udp, port: [8082] } }
`);
  const tcp = (fam: string, host: string) =>
    py(
      `print(outcome(lambda: socket.socket(socket.${fam}, socket.SOCK_STREAM).connect(("${host}", 8081))))`,
    );
  const udp = (fam: string, host: string) =>
    py(
      `print(outcome(lambda: socket.socket(socket.${fam}, socket.SOCK_DGRAM).sendto(b"q", ("${host}", 8082))))`,
    );
  for (const [fam, host] of [
    ["AF_INET", "127.0.0.1"],
    ["AF_INET", "0.0.0.0"],
    ["AF_INET6", "::1"],
    ["AF_INET6", "::"],
    ["AF_INET6", "::ffff:0.0.0.0"],
  ] as const) {
    assert.equal(tcp(fam, host), "EPERM", `tcp ${host}`);
    assert.equal(udp(fam, host), "EPERM", `udp ${host}`);
  }
  // other ports of loopback stay open
  assert.equal(py(`print(outcome(lambda: socket.socket().connect(("0.0.0.0", 8083))))`), "passed");
});

test("a socket bound to the any-address leaves a rule on the local address to the tc hook", () => {
  // the logged rule makes the socket keep its record, which the tc hook adopts
  apply(`  - { name: quarantine, direction: egress, action: block, layer3: { local: [${HOST}], remote: [${PEER}] }, layer4: { protocol: tcp, port: [80] } }
  - { name: watch, direction: egress, action: allow, log: true, layer4: { protocol: tcp, port: [80] } }
`);
  // the peer listens on nothing: a connection that gets through is refused ("passed"), a
  // dropped SYN times out
  const connect = (fam: string, bind: string, to: string) =>
    py(
      `s = socket.socket(socket.${fam}, socket.SOCK_STREAM)
s.settimeout(1.5)
${bind ? `s.bind(("${bind}", 0))` : ""}
print(outcome(lambda: s.connect(("${to}", 80))))`,
      true,
    );
  assert.equal(connect("AF_INET", "", PEER), "dropped", "unbound");
  assert.equal(connect("AF_INET", HOST, PEER), "EPERM", `bound to ${HOST}`);
  assert.equal(connect("AF_INET", "0.0.0.0", PEER), "dropped", "bound to 0.0.0.0");
  assert.equal(connect("AF_INET6", "::", `::ffff:${PEER}`), "dropped", "bound to [::]");
});

test("an unconnected udp socket is judged again for another process or user", () => {
  apply(`  - { name: nobody-no-dns, direction: egress, action: block, layer4: { protocol: udp, port: [53] }, process: { user: [65534] } }
`);
  const out = py(`
A = ("10.61.0.1", 53)
def send(s):
    return outcome(lambda: s.sendto(b"q", A))
def as_nobody(s):
    pid = os.fork()
    if pid == 0:
        os.setgid(65534); os.setuid(65534)
        print("nobody", send(s), flush=True)
        os._exit(0)
    os.waitpid(pid, 0)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
print("root", send(s), flush=True)
as_nobody(s)
t = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
as_nobody(t)
print("root", send(t), flush=True)
# a child of the same user is another process too
pid = os.fork()
if pid == 0:
    print("child", send(t), flush=True)
    os._exit(0)
os.waitpid(pid, 0)
`);
  assert.equal(out, "root passed\nnobody EPERM\nnobody EPERM\nroot passed\nchild passed");
});

test("a connect() or sendto() the hook refuses counts as a connection of the rule that refused it", () => {
  apply(`  - { name: no-tcp-9, direction: egress, action: block, layer4: { protocol: tcp, port: [9] } }
  - { name: no-udp-9, direction: egress, action: block, layer4: { protocol: udp, port: [9] } }
`);
  const code = `print(outcome(lambda: socket.socket().connect(("127.0.0.1", 9))))
print(outcome(lambda: socket.socket(socket.AF_INET6, socket.SOCK_DGRAM).sendto(b"q", ("::1", 9))))`;
  assert.equal(py(code), "EPERM\nEPERM");
  const counted = (name: string) =>
    dp.ruleCounters().rules.find((r) => r.name === name)?.connections;
  assert.equal(counted("no-tcp-9"), 1n, "the refused connect()");
  assert.equal(counted("no-udp-9"), 1n, "the refused sendto()");
  const defaults = dp.ruleCounters().rules.filter((r) => r.name === "default");
  assert.deepEqual(
    defaults.map((r) => r.connections),
    [0n, 0n],
  );
});

test("a reload judges a repeated connect() afresh: the same destination passes, is refused, passes", () => {
  // the second connect() of each run has the facts of the first, under the same policy
  const probe = `print(outcome(lambda: socket.socket().connect(("127.0.0.1", 9))))`;
  const twice = `${probe}\n${probe}`;
  const others = `  - { name: no-tcp-7, direction: egress, action: block, layer4: { protocol: tcp, port: [7] } }
`;
  apply(others);
  assert.equal(py(twice), "passed\npassed");
  apply(`  - { name: no-tcp-9, direction: egress, action: block, layer4: { protocol: tcp, port: [9] } }
`);
  assert.equal(py(twice), "EPERM\nEPERM");
  apply(others);
  assert.equal(py(twice), "passed\npassed");
});

test("a repeated connect() on one cpu is judged by its caller's name and user, not the last caller's", () => {
  apply(`  - { name: no-memo-name, direction: egress, action: block, layer4: { protocol: tcp, port: [9] }, process: { name: [moat-memo-b] } }
  - { name: no-memo-user, direction: egress, action: block, layer4: { protocol: tcp, port: [9] }, process: { user: [65534] } }
`);
  // one cpu: the memo of the socket hooks' judgements is per cpu
  const out = py(`
os.sched_setaffinity(0, {0})
def name(n):
    with open("/proc/self/comm", "w") as f:
        f.write(n)
def probe(who):
    print(who, outcome(lambda: socket.socket().connect(("127.0.0.1", 9))), flush=True)
probe("python3")
name("moat-memo-b"); probe("moat-memo-b")
name("python3"); probe("python3")
pid = os.fork()
if pid == 0:
    os.setgid(65534); os.setuid(65534)
    probe("nobody")
    os._exit(0)
os.waitpid(pid, 0)
probe("python3")
`);
  assert.equal(
    out,
    "python3 passed\nmoat-memo-b EPERM\npython3 passed\nnobody EPERM\npython3 passed",
  );
});

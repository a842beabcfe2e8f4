// Hostname rules in the kernel, through real connect() calls under the attached cgroup: a name
// binding opens a rule for the identity it was made for (cgroup, executable, uid) and no other,
// until it expires; a binding for everyone (the hosts file) opens it for all; a reload carries
// the bindings it is given; a full bindings map is counted. The clients run in a network
// namespace with no route out: an allowed connect() fails with ENETUNREACH ("passed"), a blocked
// one with EPERM.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parsePolicy } from "../../src/config/index.ts";
import { Attribution, kernelDev } from "../../src/attribution/index.ts";
import { Datapath } from "../../src/datapath/datapath.ts";
import { Reason, event as eventCodec } from "../../src/datapath/abi.ts";
import type { NameBinding, NameIdentity } from "../../src/datapath/index.ts";
import { compilePolicy } from "../../src/policy/compile/policy-image.ts";
import type { PolicyImage } from "../../src/policy/compile/kernel-image.ts";
import { readProcessUniverse } from "../../src/host/process-universe.ts";
import { testCgroup, type TestCgroup } from "../helpers/cgroup-run.ts";

const ns = `moat-test-names-${process.pid}`;
const PROGRAMS = ["alpha", "beta"];
const GITHUB = "10.61.0.1";
const HOSTS_FILE = "10.61.0.2";
const OTHER = "10.61.0.3";

let dir = "";
let cg: TestCgroup;
let dp: Datapath;
let image: PolicyImage;

const CLIENT = `
import socket, sys
s = socket.socket()
s.settimeout(2)
try:
    s.connect((sys.argv[1], int(sys.argv[2])))
    print("connected")
except PermissionError:
    print("EPERM")
except OSError:
    print("passed")
`;

/** connect() by `program` as `uid` in the test cgroup: "EPERM" or "passed" (no route out). */
function connect(program: string, ip: string, port = 443, uid = 0): string {
  const setpriv =
    uid === 0 ? [] : ["setpriv", `--reuid=${uid}`, `--regid=${uid}`, "--clear-groups"];
  const r = spawnSync(
    "nsenter",
    [
      `--net=/run/netns/${ns}`,
      "sh",
      "-c",
      `echo $$ > ${cg.dir}/cgroup.procs && exec "$@"`,
      "sh",
      ...setpriv,
      join(dir, program),
      "-c",
      CLIENT,
      ip,
      String(port),
    ],
    { encoding: "utf8", timeout: 10_000 },
  );
  return r.stdout.trim() || `no output: ${r.stderr}`;
}

function identity(program: string, uid = 0): NameIdentity {
  const exe = statSync(join(dir, program), { bigint: true });
  return {
    cgroupId: statSync(cg.dir, { bigint: true }).ino,
    exeIno: exe.ino,
    exeDev: kernelDev(Number(exe.dev)),
    uid,
  };
}

const EVERYONE: NameIdentity = { cgroupId: 0n, exeIno: 0n, exeDev: 0, uid: 0 };

const policy = (cgroup: string) => `version: 1
mode: prevent
defaults: { ingress: allow, egress: block }
attach: { cgroup: ${cgroup} }
rules:
  - name: github
    direction: egress
    action: allow
    layer3: { remote: ["**.github.example", github.example] }
    layer4: { protocol: tcp, port: [443] }
`;

function classOf(name: string): number {
  const cls = image.names?.classes.classOf([name]) ?? 0;
  assert.ok(cls > 0, `${name} has a class`);
  return cls;
}

const later = () => dp.monotonicNs() + 60_000_000_000n;

before(() => {
  dir = mkdtempSync(join(tmpdir(), "moat-names-"));
  for (const p of PROGRAMS) copyFileSync("/usr/bin/python3", join(dir, p));
  execFileSync("chmod", ["755", dir, ...PROGRAMS.map((p) => join(dir, p))]);
  cg = testCgroup("names");
  mkdirSync(cg.dir, { recursive: true });
  execFileSync("ip", ["netns", "add", ns]);
  execFileSync("ip", ["-n", ns, "link", "set", "lo", "up"]);
  dp = Datapath.start({ interfaces: [], pinRoot: null, cgroup: cg.dir });
  const model = parsePolicy(policy(cg.cgroup), "p.yaml");
  image = compilePolicy(model, readProcessUniverse(model, new Attribution()));
  assert.ok(image.names, "the policy has a names image");
  dp.apply(image);
});

after(() => {
  dp?.stop();
  spawnSync("ip", ["netns", "del", ns]);
  try {
    cg?.remove();
  } catch {
    // still busy: the next run's sweep
  }
  rmSync(dir, { recursive: true, force: true });
});

test("without a binding the hostname rule matches nothing: the default blocks", () => {
  assert.equal(connect("alpha", GITHUB), "EPERM");
});

test("a binding opens the rule for its identity only", () => {
  const bound = dp.bindNames([
    {
      identity: identity("alpha"),
      ip: GITHUB,
      nclass: classOf("api.github.example"),
      expiresNs: later(),
    },
  ]);
  assert.deepEqual(bound, { written: 1, full: 0 });
  assert.equal(connect("alpha", GITHUB), "passed");
  assert.equal(connect("alpha", GITHUB, 80), "EPERM", "the rule's port still counts");
  assert.equal(connect("alpha", OTHER), "EPERM", "another address has no binding");
  assert.equal(connect("beta", GITHUB), "EPERM", "another executable");
  assert.equal(connect("alpha", GITHUB, 443, 65534), "EPERM", "another user");
});

test("an expired binding binds nothing", () => {
  dp.bindNames([
    {
      identity: identity("beta"),
      ip: GITHUB,
      nclass: classOf("github.example"),
      expiresNs: dp.monotonicNs() - 1n,
    },
  ]);
  assert.equal(connect("beta", GITHUB), "EPERM");
});

test("a binding for everyone (the hosts file) holds for every identity", () => {
  dp.bindNames([
    { identity: EVERYONE, ip: HOSTS_FILE, nclass: classOf("github.example"), expiresNs: later() },
  ]);
  assert.equal(connect("alpha", HOSTS_FILE), "passed");
  assert.equal(connect("beta", HOSTS_FILE), "passed");
  assert.equal(connect("beta", HOSTS_FILE, 443, 65534), "passed");
});

test("unbinding removes a binding", () => {
  dp.unbindNames([{ identity: EVERYONE, ip: HOSTS_FILE }]);
  assert.equal(connect("beta", HOSTS_FILE), "EPERM");
});

type Classes = NonNullable<PolicyImage["names"]>["classes"];

/** A stand-in for the DNS proxy's store: alpha learned api.github.example; counts the asks. */
function storeBindings(): { asked: number; bindings: (classes: Classes) => NameBinding[] } {
  const store = {
    asked: 0,
    bindings: (classes: Classes): NameBinding[] => {
      store.asked++;
      return [
        {
          identity: identity("alpha"),
          ip: GITHUB,
          nclass: classes.classOf(["api.github.example"]),
          expiresNs: later(),
        },
      ];
    },
  };
  return store;
}

function compiled(text: string): PolicyImage {
  const model = parsePolicy(text, "p.yaml");
  return compilePolicy(model, readProcessUniverse(model, new Attribution()));
}

test("a reload keeps the bindings it is given, in the new policy's classes", () => {
  const store = storeBindings();
  dp.apply(image, store.bindings);
  assert.equal(store.asked, 1);
  assert.equal(connect("alpha", GITHUB), "passed");
  // a reload given none starts with none
  dp.apply(image);
  assert.equal(connect("alpha", GITHUB), "EPERM");
  // a policy naming no hosts takes no bindings
  const noNames = compiled(policy(cg.cgroup).replace(/\["\*\*.*\]/, "[10.62.0.0/16]"));
  assert.equal(noNames.names, undefined);
  dp.apply(noNames);
  const written = dp.bindNames([{ identity: EVERYONE, ip: GITHUB, nclass: 1, expiresNs: later() }]);
  assert.deepEqual(written, { written: 0, full: 0 });
  dp.apply(image);
});

test("a reload that changes no hostname rule keeps the live bindings, asking for none", () => {
  const store = storeBindings();
  const { bindings } = store;
  dp.apply(image, bindings);
  assert.equal(store.asked, 1, "the slot before was filled with other bindings: asked");
  // an answer after the reload goes into the live map
  dp.bindNames([
    {
      identity: identity("beta"),
      ip: OTHER,
      nclass: classOf("github.example"),
      expiresNs: later(),
    },
  ]);
  const extraRule = `${policy(cg.cgroup)}  - name: extra
    direction: egress
    action: allow
    layer3: { remote: [10.63.0.0/16] }
`;
  dp.apply(compiled(extraRule), bindings);
  assert.equal(store.asked, 1, "the same hostname rules: the live map is shared, nothing asked");
  assert.equal(connect("alpha", GITHUB), "passed");
  assert.equal(connect("beta", OTHER), "passed", "the answer written after the fill holds");
  dp.apply(compiled(extraRule), bindings);
  assert.equal(store.asked, 1, "and again, from the slot that shared it");
  assert.equal(connect("beta", OTHER), "passed");
  // other hostname rules: other classes, so the store's bindings are asked for again
  const gitlab = extraRule.replace("github.example]", 'github.example, "**.gitlab.example"]');
  assert.notEqual(gitlab, extraRule);
  dp.apply(compiled(gitlab), bindings);
  assert.equal(store.asked, 2);
  assert.equal(connect("alpha", GITHUB), "passed");
  assert.equal(connect("beta", OTHER), "EPERM", "only what the store gave");
  dp.apply(image);
});

test("a full bindings map is counted, and says so", () => {
  const before = dp.counters().namesFull.packets;
  const many: NameBinding[] = [];
  const total = 262144 + 3;
  for (let i = 0; i < total; i++) {
    many.push({
      identity: { ...EVERYONE, uid: 1 + (i >> 16) },
      ip: `10.70.${(i >> 8) & 255}.${i & 255}`,
      nclass: 1,
      expiresNs: later(),
    });
  }
  const result = dp.bindNames(many);
  assert.deepEqual(result, { written: 262144, full: 3 });
  assert.equal(dp.counters().namesFull.packets - before, 3n);
});

// --- DNS queries: the implicit redirect to the proxy, layer7 rules, resolvers exempt ----------

const PROXY = "10.99.0.53";
const PROXY_UDP = 5353;
const PROXY_TCP = 5354;
const SERVER = "10.61.0.53";

/** The stand-in DNS proxy: answers "proxy" on udp and tcp. */
const PROXY_SERVER = `
import selectors, socket
sel = selectors.DefaultSelector()
t = socket.socket()
t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
t.bind(("${PROXY}", ${PROXY_TCP}))
t.listen(16)
sel.register(t, selectors.EVENT_READ, "tcp")
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.bind(("${PROXY}", ${PROXY_UDP}))
sel.register(u, selectors.EVENT_READ, "udp")
print("listening", flush=True)
while True:
    for key, _ in sel.select():
        if key.data == "tcp":
            c, _ = key.fileobj.accept()
            c.sendall(b"proxy")
            c.close()
        else:
            _, peer = key.fileobj.recvfrom(64)
            key.fileobj.sendto(b"proxy", peer)
`;

/** One query's fate: "proxy" (redirected), "EPERM", or "passed" (not redirected, no route). */
const QUERY = `
import socket, sys
proto, bind53 = sys.argv[1], sys.argv[2] == "bind53"
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM)
s.settimeout(2)
if bind53:
    s.bind(("127.0.0.1", 53))
try:
    if proto == "tcp":
        s.connect(("${SERVER}", 53))
        print(s.recv(8).decode())
    else:
        s.sendto(b"q", ("${SERVER}", 53))
        print(s.recvfrom(8)[0].decode())
except PermissionError:
    print("EPERM")
except OSError:
    print("passed")
`;

function query(proto: "udp" | "tcp", bind53 = false): string {
  const r = spawnSync(
    "nsenter",
    [
      `--net=/run/netns/${ns}`,
      "sh",
      "-c",
      `echo $$ > ${cg.dir}/cgroup.procs && exec "$@"`,
      "sh",
      join(dir, "alpha"),
      "-c",
      QUERY,
      proto,
      bind53 ? "bind53" : "-",
    ],
    { encoding: "utf8", timeout: 10_000 },
  );
  return r.stdout.trim() || `no output: ${r.stderr}`;
}

const DNS_POLICY = (cgroup: string) => `version: 1
mode: prevent
defaults: { ingress: allow, egress: block }
attach: { cgroup: ${cgroup} }
rules:
  - name: no-evil
    direction: egress
    action: block
    layer7: { dns: { name: ["**.evil.example"] } }
`;

test("DNS queries go to the proxy first, quietly, whatever the layer7 rule's action; resolvers are exempt", async () => {
  execFileSync("ip", ["-n", ns, "addr", "add", `${PROXY}/32`, "dev", "lo"]);
  const server = spawn("nsenter", [`--net=/run/netns/${ns}`, "python3", "-c", PROXY_SERVER], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  try {
    await new Promise<void>((resolve, reject) => {
      server.stdout?.once("data", () => resolve());
      server.once("exit", (code) => reject(new Error(`proxy stand-in exited (${code})`)));
    });
    const model = parsePolicy(DNS_POLICY(cg.cgroup), "p.yaml");
    dp.apply(
      compilePolicy(model, readProcessUniverse(model, new Attribution()), {
        dnsProxy: { udp: { ip: PROXY, port: PROXY_UDP }, tcp: { ip: PROXY, port: PROXY_TCP } },
      }),
    );
    const reasons: number[] = [];
    const ring = dp.subscribe((record) => reasons.push(eventCodec.decode(record).reason));
    const before = dp.counters().redirected.packets;
    assert.equal(query("udp"), "proxy");
    assert.equal(query("tcp"), "proxy");
    assert.equal(dp.counters().redirected.packets - before, 2n);
    assert.equal(connect("alpha", SERVER, 443), "EPERM", "other ports: the default");
    // a process that binds port 53 is a resolver: its queries go where they were going
    assert.equal(query("udp", true), "passed");
    ring.drain();
    assert.ok(reasons.includes(Reason.new), "the blocked connect() was reported");
    assert.deepEqual(
      reasons.filter((r) => r === Reason.redirected),
      [],
      "the kernel reports no dns-proxy redirect",
    );
  } finally {
    server.kill();
  }
});

test("bindings are pinned with the policy: a restarted datapath judges and writes them", () => {
  dp.stop();
  const pinRoot = `/sys/fs/bpf/moat-test-names-${process.pid}`;
  let first: Datapath | null = null;
  let second: Datapath | null = null;
  try {
    first = Datapath.start({ interfaces: [], pinRoot, cgroup: cg.dir });
    first.apply(image);
    const binding: NameBinding = {
      identity: identity("alpha"),
      ip: GITHUB,
      nclass: classOf("github.example"),
      expiresNs: later(),
    };
    first.bindNames([binding]);
    assert.equal(connect("alpha", GITHUB), "passed");
    first.stop({ keepPins: true });
    first = null;

    second = Datapath.start({ interfaces: [], pinRoot, cgroup: cg.dir });
    assert.ok(second.adoption?.adopted.includes("policy"), JSON.stringify(second.adoption));
    assert.deepEqual(second.liveBindings(), [binding]);
    assert.equal(connect("alpha", GITHUB), "passed", "judged with the adopted binding");
    assert.equal(connect("beta", GITHUB), "EPERM");
    second.bindNames([{ ...binding, identity: identity("beta") }]);
    assert.equal(connect("beta", GITHUB), "passed", "written into the adopted map");
  } finally {
    first?.stop();
    second?.stop();
    rmSync(pinRoot, { recursive: true, force: true });
  }
});

test("the names journal outlives the daemon: the next one's first slot binds what is still live", () => {
  const pinRoot = `/sys/fs/bpf/moat-test-journal-${process.pid}`;
  let first: Datapath | null = null;
  let second: Datapath | null = null;
  try {
    first = Datapath.start({ interfaces: [], pinRoot, cgroup: cg.dir, image });
    const now = first.monotonicNs();
    const live = { identity: identity("alpha"), ip: GITHUB, name: "github.example" };
    first.recordNames([
      { ...live, expiresNs: now + 60_000_000_000n },
      { ...live, ip: OTHER, expiresNs: now - 1n },
      { ...live, identity: identity("beta"), expiresNs: now + 60_000_000_000n },
    ]);
    first.forgetNames([{ ...live, identity: identity("beta") }]);
    first.stop({ keepPins: true });
    first = null;

    let restored: unknown[] = [];
    second = Datapath.start({
      interfaces: [],
      pinRoot,
      cgroup: cg.dir,
      image,
      names: {
        restore: (names) => (restored = names),
        bindings: (classes) => [
          {
            identity: live.identity,
            ip: live.ip,
            nclass: classes.classOf([live.name]),
            expiresNs: later(),
          },
        ],
      },
    });
    assert.ok(second.adoption?.adopted.includes("names"), JSON.stringify(second.adoption));
    assert.deepEqual(
      restored.map((n) => ({ ...(n as typeof live), expiresNs: undefined })),
      [{ ...live, expiresNs: undefined }],
      "the live name only: the expired one and the forgotten one are gone",
    );
    assert.equal(connect("alpha", GITHUB), "passed", "bound in the first slot");
    assert.equal(connect("beta", GITHUB), "EPERM");
  } finally {
    first?.stop();
    second?.stop();
    rmSync(pinRoot, { recursive: true, force: true });
  }
});

// A network namespace a user owns (`unshare -rn`: a user namespace of its own, where the user is
// root) under the attached cgroup: its owner decides where its queries go. The user puts the
// policy's listed resolver on its own loopback and answers the allowed name with an address only
// the peer namespace has. moat serves the namespace (its queries answered and judged) but trusts
// no answer asked from there: the address stays closed to the same user, program and cgroup in
// moat's own namespace, and the query's event says the answer was not trusted.
//
// Run time: about 15 s on 2 cores (the daemon's start, the namespace found, two curls).
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cgroupForTest, startCgroupLab } from "../helpers/cgroup-lab.ts";
import { runIn } from "../helpers/cgroup-run.ts";
import { spawnLines } from "../helpers/child.ts";
import { sh, type Lab } from "../helpers/netns.ts";
import { storedEvents, until } from "../helpers/stored-events.ts";

const AS_NOBODY = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"];

function policy(l: Lab & { auditPath: string }, cgroup: string): string {
  return `version: 1
mode: prevent
defaults: { ingress: allow, egress: block }
attach: { interfaces: [${l.ifB}], cgroup: ${cgroup} }
logging: { audit: { path: ${l.auditPath} } }
dns: { resolvers: [${l.v4.a}] }
rules:
  - { name: dns, direction: egress, action: allow, layer4: { protocol: udp, port: [53] } }
  - { name: own-dns, direction: egress, action: allow, layer4: { protocol: udp }, process: { name: [python3] } }
  - name: web
    direction: egress
    action: allow
    layer3: { remote: [allowed.moat.test] }
    layer4: { protocol: tcp, port: [80] }
    process: { name: [curl] }
`;
}

interface DnsEvent {
  type: string;
  dns?: { query: string; answers: string[]; trusted: boolean };
}

/** A DNS server on (ip, 53) that answers every A query with `answer` (TTL 60), others empty. */
const FAKE_DNS = String.raw`
import socket, struct, sys
ip, answer = sys.argv[1], socket.inet_aton(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((ip, 53))
print("dns ready", flush=True)
while True:
    q, peer = s.recvfrom(512)
    end = 12
    while q[end] != 0:
        end += q[end] + 1
    qtype = struct.unpack("!H", q[end + 1:end + 3])[0]
    question = q[12:end + 5]
    records = struct.pack("!HHHIH", 0xC00C, 1, 1, 60, 4) + answer if qtype == 1 else b""
    header = q[:2] + struct.pack("!HHHHH", 0x8180, 1, 1 if records else 0, 0, 0)
    s.sendto(header + question + records, peer)
`;

/** Whether an unprivileged user may make a user namespace with a network namespace here. */
function userNamespacesAllowed(): boolean {
  const r = spawnSync(AS_NOBODY[0]!, [...AS_NOBODY.slice(1), "unshare", "-rn", "true"]);
  return r.status === 0;
}

/** A directory every user reads (the fake server, the resolv.conf), removed at the end. */
function sharedDir(onClose: (fn: () => void) => void): string {
  const dir = mkdtempSync(join(tmpdir(), `moat-userns-${process.pid}-`));
  chmodSync(dir, 0o755);
  onClose(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Ends every process of cgroup `dir` (cgroup.kill) and waits until none is left. */
async function killAll(dir: string): Promise<void> {
  if (!existsSync(dir)) return;
  writeFileSync(join(dir, "cgroup.kill"), "1");
  for (let i = 0; i < 50; i++) {
    if (readFileSync(join(dir, "cgroup.procs"), "utf8").trim() === "") return;
    await new Promise((r) => setTimeout(r, 100));
  }
}

test("a network namespace its user owns: moat answers its queries but no answer there binds a name", async (t) => {
  if (!userNamespacesAllowed()) {
    t.skip("unprivileged user namespaces are not allowed here");
    return;
  }
  const cg = cgroupForTest(t, "dnsuserns");
  const lab = await startCgroupLab(cg, t.name, (l) => policy(l, cg.cgroup), ["tcp:80"]);
  // the address only namespace a has (its web server listens on every address)
  const target = lab.v4.a.replace(/\.1$/, ".25");
  sh("ip", ["-n", lab.a, "addr", "add", `${target}/32`, "dev", lab.ifA]);
  const dir = sharedDir((fn) => cg.onClose(fn));
  writeFileSync(join(dir, "fake-dns.py"), FAKE_DNS);
  writeFileSync(join(dir, "resolv.conf"), `nameserver ${lab.v4.a}\noptions attempts:1\n`);
  // one identity: nobody's curl in this cgroup, in moat's namespace (b) and in the user's own
  const user = join(cg.dir, "user");
  mkdirSync(user);
  cg.onClose(() => killAll(user));

  // as nobody: a user namespace and a network namespace of its own, the resolver on its loopback
  const script = [
    `ip link set lo up && ip addr add ${lab.v4.a}/32 dev lo || exit 1`,
    `/usr/bin/python3 ${join(dir, "fake-dns.py")} ${lab.v4.a} ${target} &`,
    `mount --bind ${join(dir, "resolv.conf")} /etc/resolv.conf || exit 1`,
    `echo "netns $(readlink /proc/self/ns/net)"`,
    "read go",
    `if curl -4 -sS --max-time 3 http://allowed.moat.test/; then echo "curl 0"; else echo "curl $?"; fi`,
    "read done",
    "kill $!",
  ].join("\n");
  const owned = spawnLines("nsenter", [
    `--net=/run/netns/${lab.b}`,
    "sh",
    "-c",
    `echo $$ > ${user}/cgroup.procs && exec "$@"`,
    "sh",
    ...AS_NOBODY,
    "unshare",
    "-rnm",
    "sh",
    "-c",
    script,
  ]);
  cg.onClose(() => owned.kill("SIGKILL"));
  const netns = /^netns (net:\[\d+\])$/.exec(await owned.waitFor(/^netns /))?.[1] ?? "";
  // the two lines come from two processes, in either order
  if (!owned.lines.includes("dns ready")) await owned.waitFor(/^dns ready$/);
  const servedLine = await lab.daemon.waitFor(
    new RegExp(`serving network namespace ${netns.replace(/[[\]]/g, "\\$&")} `),
    30_000,
  );

  owned.send("go");
  const lookedUp = await owned.waitFor(/^curl \d+$/, 20_000);
  // the proxy answered it from the user's server: curl got the address, unreachable from there
  await lab.daemon.waitFor(/DNS egress curl pid \d+ asked \S+ A allowed\.moat\.test: NOERROR/);

  await t.test("the answered address stays closed to the same program in moat's namespace", () => {
    const r = runIn(lab.b, user, [
      ...AS_NOBODY,
      "curl",
      "-sS",
      "--max-time",
      "3",
      `http://${target}/`,
    ]);
    // 7: could not connect (EPERM at connect(): no rule allows the address)
    assert.equal(r.status, 7, `curl ${target}: ${r.status} ${r.stdout}${r.stderr} (${lookedUp})`);
  });

  await t.test("the query's event says its answer was not trusted", async () => {
    const query = await until("the query's dns event", () =>
      storedEvents<DnsEvent>(lab).find(
        (e) => e.type === "dns" && e.dns?.answers.includes(target) === true,
      ),
    );
    assert.equal(query.dns?.query, "allowed.moat.test");
    assert.equal(query.dns?.trusted, false);
  });

  await t.test("the log says the namespace's answers bind no names", () => {
    assert.match(servedLine, /answers .*bind no names/);
  });
});

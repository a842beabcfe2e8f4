// A container in a network namespace of its own, under the attached cgroup: moat's DNS proxy
// opens its sockets inside that namespace (the kernel's DNS redirect goes to the container's own
// loopback), asks the lab's resolver from there (the container's veth is its only way to it), and
// the container's hostname rule works as on the host: curl reaches the allowed name and is
// refused the unlisted one, dig asks over TCP too. A client in the container and one on the host
// on the same port at once are each their own asker, and so is a client on a port another
// process left. With a policy using names, `moat status` warns that nscd runs.
//
// Run time: about 15 s on 2 cores (the daemon's start, the namespace found, two curls).
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cgroupForTest, startCgroupLab } from "../helpers/cgroup-lab.ts";
import { dnsZone, startDnsmasq } from "../helpers/dns-lab.ts";
import { curl, dig, type Where } from "../helpers/dns-clients.ts";
import { spawnLines } from "../helpers/child.ts";
import { MOAT } from "../helpers/paths.ts";
import { labNamespace, sh, status, tagFor, type Lab } from "../helpers/netns.ts";
import { askerOf, startUdpClient, step } from "../helpers/udp-dns-client.ts";

function policy(l: Lab & { auditPath: string }, cgroup: string): string {
  return `version: 1
mode: prevent
defaults: { ingress: allow, egress: block }
attach: { interfaces: [${l.ifB}], cgroup: ${cgroup} }
logging: { audit: { path: ${l.auditPath} } }
dns: { resolvers: [${l.v4.a}] }
rules:
  - { name: dns, direction: egress, action: allow, layer4: { protocol: udp, port: [53] } }
  - { name: dns-tcp, direction: egress, action: allow, layer4: { protocol: tcp, port: [53] } }
  - name: web
    direction: egress
    action: allow
    layer3: { remote: [allowed.moat.test] }
    layer4: { protocol: tcp, port: [80] }
    process: { name: [curl] }
`;
}

/** Namespace c (the container), with its loopback up; joined to a by linkContainer(). */
function containerNamespace(tag: string): string {
  const c = labNamespace(tag, "c");
  sh("ip", ["netns", "add", c]);
  sh("ip", ["-n", c, "link", "set", "lo", "up"]);
  return c;
}

/** A veth of the container's own to namespace a (the resolver, the web). */
function linkContainer(lab: Lab, c: string): void {
  const octet = lab.v4.a.split(".")[2];
  const [inA, inC] = [`mt${lab.tag}x`, `mt${lab.tag}c`];
  sh("ip", ["link", "add", inA, "netns", lab.a, "type", "veth", "peer", inC, "netns", c]);
  sh("ip", ["-n", lab.a, "addr", "add", `10.230.${octet}.1/24`, "dev", inA]);
  sh("ip", ["-n", c, "addr", "add", `10.230.${octet}.2/24`, "dev", inC]);
  sh("ip", ["-n", lab.a, "link", "set", inA, "up"]);
  sh("ip", ["-n", c, "link", "set", inC, "up"]);
  // the lab's addresses (resolver, named hosts) are a's: reached over the container's veth
  const net = lab.v4.a.replace(/\.1$/, ".0/24");
  sh("ip", ["-n", c, "route", "add", net, "via", `10.230.${octet}.1`]);
}

/** One resolver in namespace a (the lab's zone: allowed and unlisted); its resolv.conf. */
async function resolver(lab: Lab, onClose: (fn: () => void) => void): Promise<string> {
  const z = dnsZone(lab);
  const dir = mkdtempSync(join(tmpdir(), `moat-dnsns-${lab.tag}-`));
  chmodSync(dir, 0o755);
  onClose(() => rmSync(dir, { recursive: true, force: true }));
  for (const ip of [z.allowed, z.unlisted])
    sh("ip", ["-n", lab.a, "addr", "add", `${ip}/32`, "dev", lab.ifA]);
  const server = startDnsmasq(lab.a, z.upstream, dir, [
    "--local=/moat.test/",
    "--local-ttl=60",
    `--host-record=allowed.moat.test,${z.allowed}`,
    `--host-record=unlisted.moat.test,${z.unlisted}`,
  ]);
  onClose(() => server.kill("SIGKILL"));
  const resolv = join(dir, "resolv.conf");
  writeFileSync(resolv, `nameserver ${z.upstream}\noptions attempts:1 timeout:2\n`);
  for (let i = 0; i < 100; i++) {
    const r = spawnSync(
      "ip",
      [
        "netns",
        "exec",
        lab.a,
        "dig",
        "+tries=1",
        "+time=1",
        "+short",
        `@${z.upstream}`,
        "allowed.moat.test",
      ],
      { encoding: "utf8" },
    );
    if (r.stdout.trim() === z.allowed) return resolv;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`dnsmasq at ${z.upstream} does not answer: ${server.stderr.join("\n")}`);
}

test("a container in its own network namespace: its names go through moat's proxy there; status warns of nscd", async (t) => {
  const cg = cgroupForTest(t, "dnsns");
  // the container and its first process, there before moat starts: found at its start
  const c = containerNamespace(tagFor(t.name));
  cg.onClose(() => status("ip", ["netns", "del", c]));
  const box = join(cg.dir, "box");
  mkdirSync(box);
  const init = spawnLines("nsenter", [
    `--net=/run/netns/${c}`,
    "sh",
    "-c",
    `echo $$ > ${box}/cgroup.procs && echo in && exec sleep 120`,
  ]);
  cg.onClose(() => init.kill("SIGKILL"));
  await init.waitFor(/^in$/);
  const lab = await startCgroupLab(cg, t.name, (l) => policy(l, cg.cgroup), ["tcp:80"]);
  linkContainer(lab, c);
  const resolv = await resolver(lab, (fn) => cg.onClose(fn));
  // said at the daemon's start (before "moat is running"), or soon after
  const served = new RegExp(`serving network namespace net:\\[\\d+\\] \\(pid ${init.proc.pid}\\)`);
  if (!lab.daemon.lines.some((l) => served.test(l))) await lab.daemon.waitFor(served);
  const where: Where = { ns: c, cgroupDir: box };

  await t.test("curl in the container reaches the allowed name", async () => {
    const r = curl(where, resolv, "http://allowed.moat.test/");
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, "port 80\n");
    // the proxy answered it (the container's own query, as curl)
    await lab.daemon.waitFor(/DNS egress curl pid \d+ asked \S+ A allowed\.moat\.test: NOERROR/);
  });

  await t.test("dig over TCP in the container: answered by moat's proxy there", async () => {
    const r = dig(where, dnsZone(lab).upstream, "allowed.moat.test", ["+tcp"]);
    assert.equal(r.rcode, "NOERROR", r.stdout + r.stderr);
    assert.deepEqual(r.addresses, [dnsZone(lab).allowed]);
    await lab.daemon.waitFor(/DNS egress dig pid \d+ asked \S+ A allowed\.moat\.test: NOERROR/);
  });

  await t.test("curl in the container is refused an unlisted name", () => {
    const r = curl(where, resolv, "http://unlisted.moat.test/");
    assert.equal(r.status, 7, `curl: ${r.status} ${r.stderr}`);
  });

  await t.test(
    "a container's client and the host's on the same port: each query is its own asker's",
    async () => {
      // the same port in two namespaces: the container's socket records its redirect at connect(),
      // the host's at its send, after it; the container then asks on its connected socket
      const { client: inC, pid: cPid } = await startUdpClient(c, box);
      cg.onClose(() => inC.kill("SIGKILL"));
      const { client: inB, pid: bPid } = await startUdpClient(lab.b, cg.dir);
      cg.onClose(() => inB.kill("SIGKILL"));
      const z = dnsZone(lab);
      const port = 40_000 + (process.pid % 20_000);
      assert.deepEqual(await step(inC, `bind ${port}`), { bound: port });
      assert.deepEqual(await step(inB, `bind ${port}`), { bound: port });
      assert.deepEqual(await step(inC, `connect ${z.upstream} 53`), { connected: true });
      assert.deepEqual(await step(inB, `sendto ${z.upstream} 53 allowed.moat.test`), { rcode: 0 });
      assert.deepEqual(await step(inC, "send unlisted.moat.test"), { rcode: 0 });
      const asker = await askerOf(lab.apiSocket, "unlisted.moat.test", port);
      assert.equal(asker, cPid, `the container's (pid ${cPid}), not the host's (pid ${bPid})`);
      assert.equal(await askerOf(lab.apiSocket, "allowed.moat.test", port), bPid);
    },
  );

  await t.test(
    "a client on a port another left: the first one's record is not its own",
    async () => {
      // the first client bound its socket to 127.0.0.1 itself, asked, and is gone; the next one,
      // another process, is bound to no address on the same port
      const port = 40_000 + ((process.pid + 7) % 20_000);
      const client = async () => {
        const started = await startUdpClient(lab.b, cg.dir);
        cg.onClose(() => started.client.kill("SIGKILL"));
        return started;
      };
      const z = dnsZone(lab);
      const { client: first } = await client();
      assert.deepEqual(await step(first, `bind ${port} 127.0.0.1`), { bound: port });
      assert.deepEqual(await step(first, `sendto ${z.upstream} 53 allowed.moat.test`), {
        rcode: 0,
      });
      first.kill("SIGKILL");
      await first.exited;
      const { client: next, pid: nextPid } = await client();
      assert.deepEqual(await step(next, `bind ${port}`), { bound: port });
      assert.deepEqual(await step(next, `sendto ${z.upstream} 53 unlisted.moat.test`), {
        rcode: 0,
      });
      const asker = await askerOf(lab.apiSocket, "unlisted.moat.test", port);
      assert.equal(asker, nextPid);
    },
  );

  await t.test("moat status warns that nscd hides who looked a name up", async () => {
    // a process named nscd is what moat looks for (/proc/PID/comm)
    const dir = mkdtempSync(join(tmpdir(), "moat-nscd-"));
    cg.onClose(() => rmSync(dir, { recursive: true, force: true }));
    copyFileSync("/bin/sleep", join(dir, "nscd"));
    chmodSync(join(dir, "nscd"), 0o755);
    const nscd = spawnLines(join(dir, "nscd"), ["60"]);
    cg.onClose(() => nscd.kill("SIGKILL"));
    const r = spawnSync(MOAT, ["status", "--api", `unix:${lab.apiSocket}`], { encoding: "utf8" });
    assert.equal(r.status, 0, r.stderr);
    const warning = r.stdout.split("\n").find((l) => l.startsWith("warning: nscd runs"));
    assert.ok(warning, r.stdout);
    assert.match(warning, new RegExp(`\\(pid [0-9, ]*\\b${nscd.proc.pid}\\b`));
    assert.match(warning, /the identity is lost/);
    assert.match(warning, /'enable-cache hosts no'/);
  });
});

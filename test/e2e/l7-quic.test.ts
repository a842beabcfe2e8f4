// QUIC as a user sees it (docs/l7-quic.md): a process that an L7 web rule (layer7.tls) judges
// gets EPERM at once for UDP 443 (rule l7:quic, reason quic), so it falls back to TCP; another
// process's QUIC flow passes, and the SNI of its Initial (ngtcp2's client, gtlsclient, naming
// the server by a name of the lab) comes in a follow-up event with reason quic_initial.
//
// Chromium (Debian's) sends its own Initial, whose post-quantum key share spans two datagrams.
//
// Run time: about 25 s on 2 cores (the daemon's start, three clients).
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { cgroupForTest, startCgroupLab } from "../helpers/cgroup-lab.ts";
import { runIn } from "../helpers/cgroup-run.ts";
import type { Lab } from "../helpers/netns.ts";
import { storedEvents, until } from "../helpers/stored-events.ts";
import { spawnLines } from "../helpers/child.ts";

const NAME = "quic.moat.test";

function policy(l: Lab & { auditPath: string }, cgroup: string): string {
  return `version: 1
mode: prevent
defaults: { ingress: allow, egress: allow }
attach: { interfaces: [${l.ifB}], cgroup: ${cgroup} }
logging: { audit: { path: ${l.auditPath} } }
rules:
  - { name: browser, direction: egress, action: allow, process: { cgroup: [${cgroup}/web] }, layer7: { tls: { sni: [${NAME}] } } }
  - { name: quic-watch, direction: egress, action: block, mode: detect, layer4: { protocol: udp, port: [443] } }
`;
}

interface EventJson {
  type: string;
  rule?: string;
  reason?: string;
  hook?: string;
  remote?: { ip: string; port: number };
  process?: { name: string } | null;
  layer7?: { tls?: { sni?: string; version?: string; alpn?: string[] }; quic?: boolean } | null;
}

/** Python connecting a UDP socket to host:443 and sending: "sent" or "EPERM", and how fast. */
const udpConnect = (host: string): string[] => [
  "python3",
  "-c",
  `import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\ntry:\n    s.connect(("${host}", 443))\n    s.send(b"x" * 1200)\n    print("sent")\nexcept PermissionError:\n    print("EPERM")`,
];

test("QUIC: EPERM under an L7 web rule; elsewhere the Initial's SNI is reported", async (t) => {
  const cg = cgroupForTest(t, "quic");
  const web = join(cg.dir, "web");
  const other = join(cg.dir, "other");
  let peer = "";
  const lab = await startCgroupLab(
    cg,
    "l7 quic",
    (l) => {
      // the cgroups exist before the daemon reads the host's cgroups
      mkdirSync(web);
      mkdirSync(other);
      peer = l.v4.a;
      return policy(l, cg.cgroup);
    },
    [],
  );
  // gtlsclient sends the name it connects to as SNI: the lab's name, in a hosts file of its own
  const hosts = join(lab.dir, "hosts");
  writeFileSync(hosts, `127.0.0.1 localhost\n${peer} ${NAME}\n`);
  const gtlsclient = (cgroupDir: string) =>
    runIn(lab.b, cgroupDir, [
      "unshare",
      "-m",
      "sh",
      "-c",
      `mount --bind ${hosts} /etc/hosts && exec timeout -s KILL 3 gtlsclient -q --timeout=1s ${NAME} 443`,
    ]);

  await t.test("under the L7 rule: UDP 443 is EPERM at once, by rule l7:quic", async () => {
    const r = runIn(lab.b, web, udpConnect(peer));
    assert.equal(r.stdout.trim(), "EPERM", JSON.stringify(r));
    await lab.daemon.waitFor(/BLOCKED egress udp \S+ -> \S+:443 by rule l7:quic \(python3 pid/);
    // a QUIC client there gives up at once too (it would fall back to TCP)
    const q = gtlsclient(web);
    // it failed by itself, on the refused send, before its own timeout and the KILL at 3 s
    assert.notEqual(q.status, 137, "gtlsclient was killed: it waited");
    assert.match(q.stdout + q.stderr, /not permitted/i, JSON.stringify(q));
  });

  await t.test("elsewhere: the QUIC flow passes (detect), its Initial's SNI reported", async () => {
    gtlsclient(other);
    await lab.daemon.waitFor(
      /DETECTED egress udp \S+ -> \S+:443 QUIC SNI quic\.moat\.test by rule quic-watch \(gtlsclient pid/,
    );
    const events = storedEvents<EventJson>(lab);
    const event = events.find((e) => e.reason === "quic_initial");
    assert.ok(event, "the QUIC Initial's event is stored");
    assert.equal(event.type, "detected");
    assert.equal(event.rule, "quic-watch");
    assert.equal(event.hook, "quic_initial");
    assert.equal(event.process?.name, "gtlsclient");
    assert.deepEqual(event.remote, { ip: peer, port: 443 });
    assert.equal(event.layer7?.quic, true);
    assert.equal(event.layer7?.tls?.sni, NAME);
    assert.equal(event.layer7?.tls?.version, "1.3");
    assert.deepEqual(event.layer7?.tls?.alpn, ["h3"]);
    // the block under the L7 rule, as stored
    const blocked = events.find((e) => e.type === "blocked" && e.rule === "l7:quic");
    assert.equal(blocked?.reason, "quic");
    assert.equal(blocked?.remote?.port, 443);
    assert.equal(blocked?.process?.name, "python3");
    // its two Initials are one flow, read once; the process under the L7 rule sent nothing
    assert.equal(
      events.filter((e) => e.reason === "quic_initial").length,
      1,
      "one flow read, once",
    );
  });

  await t.test("Chromium's own Initial (its key share spans two datagrams) is read", async () => {
    const profile = join(lab.dir, "chromium");
    const chromium = [
      "timeout",
      "30",
      "chromium",
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      `--user-data-dir=${profile}`,
      `--origin-to-force-quic-on=${NAME}:443`,
      `--host-resolver-rules=MAP ${NAME} ${peer}`,
      "--dump-dom",
      `https://${NAME}/`,
    ];
    // a server that takes the datagrams and never answers: Chromium sends its whole ClientHello
    // (an ICMP port unreachable would end the attempt after the first datagram)
    const sink = spawnLines("ip", [
      "netns",
      "exec",
      lab.a,
      "socat",
      "-u",
      "UDP-RECV:443",
      "/dev/null",
    ]);
    cg.onClose(() => sink.kill());
    const before = storedEvents<EventJson>(lab).filter((e) => e.reason === "quic_initial").length;
    // in the lab's namespace and the `other` cgroup, until its Initial has been read
    const browser = spawnLines("nsenter", [
      `--net=/run/netns/${lab.b}`,
      "sh",
      "-c",
      `echo $$ > ${other}/cgroup.procs && exec "$@"`,
      "sh",
      ...chromium,
    ]);
    cg.onClose(() => browser.kill());
    const read = await until("Chromium's QUIC Initial event", () => {
      const all = storedEvents<EventJson>(lab).filter((e) => e.reason === "quic_initial");
      return all.length > before ? all.slice(before) : undefined;
    });
    browser.kill();
    assert.equal(read.length, 1, "one flow read, once");
    assert.equal(read[0]?.layer7?.tls?.sni, NAME);
    assert.equal(read[0]?.layer7?.tls?.version, "1.3");
    assert.deepEqual(read[0]?.layer7?.tls?.alpn, ["h3"]);
  });
});

// The DNS side of a namespace lab: real resolvers serving a test zone (moat.test) in the peer
// namespace (a) and a stub resolver on 127.0.0.53 in the client namespace (b), where moat runs
// and the clients live. Clients read a resolv.conf of the lab's own (dns-clients.ts bind-mounts it
// over /etc/resolv.conf in a mount namespace of the client alone): the host's file is never
// touched.
//
// In namespace a:
//   upstream  dnsmasq at lab.v4.a, the zone below, every answer with TTL 1
//   unbound   unbound at .11, the same names without the CNAME (a second trusted upstream); also
//             DNS over TLS on port 853, with a self-signed certificate made for the run
//   untrusted dnsmasq at .12, answers every name under moat.test with .21
// In namespace b:
//   stub      dnsmasq at 127.0.0.53 forwarding to upstream, no cache (every lookup goes upstream)
// Every address in namespace a answers HTTP on the ports the test's servers.ts listens on.
import { spawnSync } from "node:child_process";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { spawnLines, type LineChild } from "./child.ts";
import { sh, type Lab } from "./netns.ts";

export const STUB = "127.0.0.53";
/** DNS over TLS: unbound's port. */
export const DOT_PORT = 853;
/** Addresses of the big answer: more A records than fit 512 bytes (about 1000 bytes). */
const BIG_COUNT = 60;
const BIG_PREFIX = "10.233.0";
/** The race names' addresses: one of its own per name, anywhere in this /16. */
const RACE_PREFIX = "10.232";
/** How many race names the zone has (r0.race.moat.test ...). */
export const RACE_NAMES = 2400;

export interface DnsZone {
  /** Resolvers. */
  upstream: string;
  unbound: string;
  untrusted: string;
  /** allowed.moat.test, other.moat.test (same address) and cname.moat.test -> allowed. */
  allowed: string;
  /** What the untrusted server answers for every name. */
  untrustedAnswer: string;
  /** a.b.deep.moat.test */
  deep: string;
  /** moat.test itself */
  apex: string;
  /** blocked.moat.test and watched.moat.test (queries a layer7.dns rule judges) */
  judged: string;
  /** unlisted.moat.test: a name no policy names */
  unlisted: string;
  /** big.moat.test: BIG_COUNT A records */
  big: string[];
  /** The race names: r<i>.race.moat.test, each with an address of its own. */
  race(i: number): { name: string; ip: string };
}

/** The zone's addresses in `lab`: in the lab's /24 (the resolvers, single names) or routed to a. */
export function dnsZone(lab: Lab): DnsZone {
  const net = lab.v4.a.replace(/\.1$/, "");
  return {
    upstream: lab.v4.a,
    unbound: `${net}.11`,
    untrusted: `${net}.12`,
    allowed: `${net}.20`,
    untrustedAnswer: `${net}.21`,
    deep: `${net}.22`,
    apex: `${net}.23`,
    judged: `${net}.24`,
    unlisted: `${net}.25`,
    big: Array.from({ length: BIG_COUNT }, (_, i) => `${BIG_PREFIX}.${i + 1}`),
    race: (i) => ({
      name: `r${i}.race.moat.test`,
      ip: `${RACE_PREFIX}.${1 + Math.floor(i / 250)}.${1 + (i % 250)}`,
    }),
  };
}

/** The single names of the zone and their address (the big and race names aside). */
function records(z: DnsZone): [string, string][] {
  return [
    ["allowed.moat.test", z.allowed],
    ["other.moat.test", z.allowed],
    ["a.b.deep.moat.test", z.deep],
    ["moat.test", z.apex],
    ["blocked.moat.test", z.judged],
    ["watched.moat.test", z.judged],
    ["unlisted.moat.test", z.unlisted],
  ];
}

export interface DnsPeers {
  zone: DnsZone;
  /** resolv.conf files naming one resolver each (readable by every user). */
  resolv: { stub: string; upstream: string; unbound: string; untrusted: string };
  /** Ends the resolvers and removes their files; the addresses go with the namespaces. */
  close(): void;
}

/**
 * Starts the resolvers of the lab (see the top of this file) and resolves once each answers.
 * The HTTP servers are the caller's (startPeerServers in namespace a: it listens on every
 * address, the ones added here included).
 */
export async function startDnsPeers(lab: Lab): Promise<DnsPeers> {
  const zone = dnsZone(lab);
  const dir = mkdtempSync(join(tmpdir(), `moat-dns-${lab.tag}-`));
  chmodSync(dir, 0o755); // resolv.conf files are read by the clients, whatever their user
  const children: LineChild[] = [];
  const close = () => {
    for (const c of children) c.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    addAddresses(lab, zone);
    const hosts = join(dir, "zone.hosts");
    const lines = zone.big.map((ip) => `${ip} big.moat.test`);
    for (let i = 0; i < RACE_NAMES; i++) {
      const r = zone.race(i);
      lines.push(`${r.ip} ${r.name}`);
    }
    writeFileSync(hosts, `${lines.join("\n")}\n`);
    children.push(
      startDnsmasq(lab.a, zone.upstream, dir, [
        "--local=/moat.test/", // a name the zone lacks is NXDOMAIN, never forwarded
        "--local-ttl=1",
        `--addn-hosts=${hosts}`,
        ...records(zone).map(([name, ip]) => `--host-record=${name},${ip}`),
        "--cname=cname.moat.test,allowed.moat.test",
      ]),
      startDnsmasq(lab.a, zone.untrusted, dir, [`--address=/moat.test/${zone.untrustedAnswer}`]),
      startDnsmasq(lab.b, STUB, dir, [`--server=${zone.upstream}`, "--cache-size=0"]),
      unbound(lab.a, zone, dir),
    );
    const resolv = {
      stub: resolvConf(dir, "stub", STUB),
      upstream: resolvConf(dir, "upstream", zone.upstream),
      unbound: resolvConf(dir, "unbound", zone.unbound),
      untrusted: resolvConf(dir, "untrusted", zone.untrusted),
    };
    for (const [ns, server] of [
      [lab.a, zone.upstream],
      [lab.a, zone.untrusted],
      [lab.a, zone.unbound],
      [lab.b, STUB],
    ] as const)
      await answering(ns, server, children);
    return { zone, resolv, close };
  } catch (err) {
    close();
    throw err;
  }
}

/** The resolvers' addresses and the single names' on a's veth; the big and race ones routed. */
function addAddresses(lab: Lab, z: DnsZone): void {
  const single = [z.unbound, z.untrusted, z.allowed, z.untrustedAnswer, z.deep, z.apex];
  for (const ip of [...single, z.judged, z.unlisted])
    sh("ip", ["-n", lab.a, "addr", "add", `${ip}/32`, "dev", lab.ifA]);
  // namespace a takes every address of these prefixes as its own (a local route), b routes them
  for (const prefix of [`${BIG_PREFIX}.0/24`, `${RACE_PREFIX}.0.0/16`]) {
    sh("ip", ["-n", lab.a, "route", "add", "local", prefix, "dev", "lo"]);
    sh("ip", ["-n", lab.b, "route", "add", prefix, "via", lab.v4.a]);
  }
}

/** dnsmasq in namespace `ns` on `listen`:`port`, in the foreground, with `args` (its answers). */
export function startDnsmasq(
  ns: string,
  listen: string,
  dir: string,
  args: string[],
  port = 53,
): LineChild {
  return spawnLines("ip", [
    "netns",
    "exec",
    ns,
    "dnsmasq",
    "--keep-in-foreground",
    "--no-resolv",
    "--no-hosts",
    "--bind-interfaces",
    `--listen-address=${listen}`,
    `--port=${port}`,
    "--user=root",
    `--pid-file=${join(dir, `dnsmasq-${listen}-${port}.pid`)}`,
    ...args,
  ]);
}

/** A self-signed certificate and its key for `name`, in `dir` (unbound's DNS over TLS). */
function selfSigned(dir: string, name: string): { cert: string; key: string } {
  const cert = join(dir, "dot-cert.pem");
  const key = join(dir, "dot-key.pem");
  const r = spawnSync(
    "openssl",
    // a P-256 key: made in milliseconds, unlike RSA
    ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"].concat([
      "-keyout",
      key,
      "-out",
      cert,
      "-days",
      "1",
      "-subj",
      `/CN=${name}`,
    ]),
    { encoding: "utf8" },
  );
  if (r.status !== 0) throw new Error(`openssl req: ${r.stderr}`);
  return { cert, key };
}

/** unbound in the foreground with a generated config: no chroot, no user switch, no control. */
function unbound(ns: string, z: DnsZone, dir: string): LineChild {
  const conf = join(dir, "unbound.conf");
  const tls = selfSigned(dir, "unbound.moat.test");
  const data = records(z).map(([name, ip]) => `  local-data: "${name}. 1 IN A ${ip}"`);
  writeFileSync(
    conf,
    `server:
  interface: ${z.unbound}
  interface: ${z.unbound}@${DOT_PORT}
  port: 53
  tls-port: ${DOT_PORT}
  tls-service-key: "${tls.key}"
  tls-service-pem: "${tls.cert}"
  do-daemonize: no
  chroot: ""
  username: ""
  directory: "${dir}"
  pidfile: "${join(dir, "unbound.pid")}"
  use-syslog: no
  logfile: ""
  do-ip6: no
  num-threads: 1
  access-control: 0.0.0.0/0 allow
  module-config: "iterator"
  local-zone: "moat.test." static
${data.join("\n")}
remote-control:
  control-enable: no
`,
  );
  return spawnLines("ip", ["netns", "exec", ns, "unbound", "-d", "-c", conf]);
}

function resolvConf(dir: string, name: string, server: string): string {
  const path = join(dir, `resolv-${name}.conf`);
  // one try, short: a refused or lost query shows as a failure, not as a 10 s stall
  writeFileSync(path, `nameserver ${server}\noptions attempts:1 timeout:2\n`);
  return path;
}

/** Waits until `server` in `ns` answers a query (resolvers take a moment to bind). */
async function answering(ns: string, server: string, children: LineChild[]): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const r = spawnSync(
      "ip",
      ["netns", "exec", ns, "dig", "+tries=1", "+time=1", "+short", `@${server}`, "moat.test"],
      { encoding: "utf8", timeout: 5000 },
    );
    if (r.status === 0 && r.stdout.trim() !== "") return;
    await new Promise((res) => setTimeout(res, 100));
  }
  const logs = children.map((c) => c.stderr.concat(c.lines).join("\n")).join("\n");
  throw new Error(`the resolver at ${server} in ${ns} does not answer:\n${logs}`);
}

// The L7 relay's own per-connection CPU, without the kernel's side: the relay (src/l7) runs in
// this process on loopback with the kernel's record, the owner and the names given as constants
// and the default splice (Node copies both ways); B7's server (bench/l7-server.ts) and client
// (bench/l7-client.ts) run in processes of their own, so this process's CPU is the relay's. For
// before/after comparisons of the relay's code alone, in alternated pairs:
//
//   node bench/l7-path.ts [--base=TREE] [--pairs=N] [--requests=N] [--handshakes=N]
//     --base:  a copy of the tree before a change (its src/l7 is the "before"); without it, one
//              run of this tree
//   node bench/l7-path.ts --one=TREE ...   one run of TREE's relay, one JSON line (internal)
import { execFile, spawnSync } from "node:child_process";
import { promisify } from "node:util";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { PolicyModel } from "../src/config/model.ts";
import type { OriginalDestination } from "../src/datapath/index.ts";
import type { L7Relay, L7RelayOptions } from "../src/l7/index.ts";
import { spawnLines, type LineChild } from "../test/helpers/child.ts";
import { NODE, ROOT } from "../test/helpers/paths.ts";
import { benchCertificate, l7Policy, SNI } from "./l7-lab.ts";
import { median } from "./results.ts";

const arg = (name: string) =>
  process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
const REQUESTS = Number(arg("requests") ?? 1000);
const HANDSHAKES = Number(arg("handshakes") ?? 600);
/** The client's own warm-up connections (bench/l7-client.ts), counted in the CPU read. */
const CLIENT_WARMUP = 20;

interface Run {
  httpUs: number;
  tlsUs: number;
}

/** bench/l7-client.ts (asynchronously: the relay answers it from this process's loop). */
async function client(args: string[]): Promise<void> {
  await promisify(execFile)(
    NODE,
    ["--disable-warning=ExperimentalWarning", `${ROOT}bench/l7-client.ts`, ...args],
    { maxBuffer: 64 << 20 },
  );
}

/** One run of the relay at `tree`: µs of this process's CPU a request and a handshake. */
async function one(tree: string): Promise<Run> {
  const { L7Relay: Relay } = (await import(`${tree}/src/l7/index.ts`)) as {
    L7Relay: typeof L7Relay;
  };
  const { parsePolicy } = (await import(`${tree}/src/config/index.ts`)) as {
    parsePolicy: (text: string, file: string) => PolicyModel;
  };
  const work = mkdtempSync(join(tmpdir(), "moat-l7path-"));
  // an address of loopback's /8 of this run's own, for B7's servers on ports 80 and 443
  const server = `127.${77 + (process.pid % 100)}.${(process.pid >> 8) % 250}.1`;
  const children: LineChild[] = [];
  let relay: L7Relay | null = null;
  try {
    const certificate = benchCertificate(work);
    const peer = spawnLines(NODE, [
      "--disable-warning=ExperimentalWarning",
      `${ROOT}bench/l7-server.ts`,
      server,
      certificate.cert,
      certificate.key,
    ]);
    children.push(peer);
    await peer.waitFor(/^listening$/);
    const model = parsePolicy(
      l7Policy(
        { ifB: "lo", v4: { a: server }, auditPath: join(work, "audit.log") },
        "/moat-l7path",
      ),
      "l7path.yaml",
    );
    let port = 80;
    const owner = { pid: 4242, uid: 0, cgroupId: 1n, comm: "l7-client" };
    const process_ = {
      pid: 4242,
      name: "l7-client",
      path: NODE,
      user: 0,
      cgroup: "/moat-l7path",
      container: null,
    };
    const options: L7RelayOptions = {
      original: (): OriginalDestination => ({
        original: { ip: server, port },
        protocol: "tcp",
        redirect: 0,
        generation: 1,
        target: { ip: "127.0.0.1", port: 0 },
        owner,
      }),
      process: () => process_,
      names: () => [],
      policy: () => model,
      generation: () => 1,
      report: () => {},
      log: () => {},
    };
    relay = await Relay.open(options);
    const at = relay.addressFor(4);
    if (!at) throw new Error("the relay does not listen");
    const http = ["http", at.ip, String(at.port)];
    const tls = ["tls", at.ip, String(at.port), SNI];
    // warm: the certificate probed and cached, the code optimized
    for (let i = 0; i < 2; i++) {
      port = 80;
      await client([...http, "200"]);
      port = 443;
      await client([...tls, "200"]);
    }
    port = 80;
    const t0 = process.cpuUsage();
    await client([...http, String(REQUESTS)]);
    const t1 = process.cpuUsage();
    port = 443;
    await client([...tls, String(HANDSHAKES)]);
    const t2 = process.cpuUsage();
    const us = (a: NodeJS.CpuUsage, b: NodeJS.CpuUsage) => b.user + b.system - a.user - a.system;
    return {
      httpUs: us(t0, t1) / (REQUESTS + CLIENT_WARMUP),
      tlsUs: us(t1, t2) / (HANDSHAKES + CLIENT_WARMUP),
    };
  } finally {
    relay?.close();
    for (const c of children) c.kill("SIGKILL");
    rmSync(work, { recursive: true, force: true });
  }
}

function runOne(tree: string): Run {
  const r = spawnSync(
    NODE,
    [
      "--disable-warning=ExperimentalWarning",
      "--max-semi-space-size=2",
      `${ROOT}bench/l7-path.ts`,
      `--one=${tree}`,
      `--requests=${REQUESTS}`,
      `--handshakes=${HANDSHAKES}`,
    ],
    { encoding: "utf8" },
  );
  if (r.status !== 0) throw new Error(`l7-path --one=${tree}: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split("\n").at(-1) ?? "") as Run;
}

const only = arg("one");
if (only) {
  console.log(JSON.stringify(await one(only)));
  process.exit(0);
}
const base = arg("base");
const here = ROOT.replace(/\/$/, "");
const pairs = Number(arg("pairs") ?? (base ? 3 : 1));
const rows: { base?: Run; now: Run }[] = [];
for (let i = 0; i < pairs; i++) {
  const before = base ? runOne(base) : undefined;
  const now = runOne(here);
  rows.push({ ...(before ? { base: before } : {}), now });
  const f = (r: Run) => `${r.httpUs.toFixed(0)} µs/request, ${r.tlsUs.toFixed(0)} µs/handshake`;
  console.log(`pair ${i + 1}: ${before ? `before ${f(before)}; ` : ""}now ${f(now)}`);
}
const med = (pick: (r: { base?: Run; now: Run }) => number | undefined) =>
  median(rows.map(pick).filter((x): x is number => x !== undefined));
console.log(
  JSON.stringify({
    ...(base
      ? { before: { httpUs: med((r) => r.base?.httpUs), tlsUs: med((r) => r.base?.tlsUs) } }
      : {}),
    now: { httpUs: med((r) => r.now.httpUs), tlsUs: med((r) => r.now.tlsUs) },
  }),
);

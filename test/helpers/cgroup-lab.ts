// The set-up the socket-hook e2e tests share: a cgroup of the test's own for attach.cgroup, the
// moat lab (the daemon in namespace b) and the peer servers in namespace a, all gone when the
// test ends, whichever step failed.
import type { TestContext } from "node:test";
import { spawnLines, type LineChild } from "./child.ts";
import { testCgroup } from "./cgroup-run.ts";
import { startMoatLab, startPeerServers, type MoatLab } from "./moat-lab.ts";
import type { Lab } from "./netns.ts";
import { NODE, ROOT } from "./paths.ts";

export interface CgroupForTest {
  /** The path inside the cgroup v2 hierarchy, as attach.cgroup names it. */
  cgroup: string;
  /** Its directory. */
  dir: string;
  /** Runs `fn` when the test ends: the last registered first, the cgroup's removal last. */
  onClose(fn: () => unknown): void;
}

/** A cgroup of this test (`/moat-test-KIND-PID`), removed when the test ends. */
export function cgroupForTest(t: TestContext, kind: string): CgroupForTest {
  const { cgroup, dir, remove } = testCgroup(kind);
  const closers: (() => unknown)[] = [remove];
  t.after(async () => {
    for (const close of closers.reverse()) await close();
  });
  return { cgroup, dir, onClose: (fn) => closers.push(fn) };
}

/** The moat lab with `policy`, and peer servers (servers.ts specs) in namespace a. */
export async function startCgroupLab(
  cg: CgroupForTest,
  name: string,
  policy: (lab: Lab & { auditPath: string }) => string,
  peers: string[],
): Promise<MoatLab> {
  const lab = await startMoatLab(name, policy, []);
  cg.onClose(() => lab.close());
  if (peers.length > 0) {
    const peer = await startPeerServers(lab, peers);
    cg.onClose(() => peer.kill());
  }
  return lab;
}

/**
 * http-peer.ts on port 80 in namespace a, once it listens, ended when the test ends: its lines
 * show each request that reached it.
 */
export function startHttpPeer(cg: CgroupForTest, lab: MoatLab): Promise<LineChild> {
  return startPeerHelper(lab, "http-peer.ts", ["80"], cg.onClose);
}

/**
 * The helper test/helpers/`script` with `args` in `lab`'s namespace a, once it prints
 * "listening"; `onClose` is given what ends it.
 */
export async function startPeerHelper(
  lab: Lab,
  script: string,
  args: string[],
  onClose: (end: () => unknown) => void,
): Promise<LineChild> {
  const server = spawnLines("ip", [
    "netns",
    "exec",
    lab.a,
    NODE,
    "--disable-warning=ExperimentalWarning",
    `${ROOT}test/helpers/${script}`,
    ...args,
  ]);
  onClose(() => server.kill());
  await server.waitFor(/^listening$/);
  return server;
}

/** `cmd` in `lab`'s namespace b and in the test's cgroup, ended when the test ends. */
export function spawnInCgroup(cg: CgroupForTest, lab: Lab, cmd: string[]): LineChild {
  const child = spawnLines("nsenter", [
    `--net=/run/netns/${lab.b}`,
    "sh",
    "-c",
    `echo $$ > ${cg.dir}/cgroup.procs && exec "$@"`,
    "sh",
    ...cmd,
  ]);
  cg.onClose(() => child.kill());
  return child;
}

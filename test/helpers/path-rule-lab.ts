// The lab of the `path` rule tests: a cgroup and a network namespace (its loopback up) of the
// test's own, moat's datapath attached to the cgroup, a work directory anyone may enter, and
// policies that block egress but for one TCP port, allowed to the executables a test names.
// Commands run as nobody in the namespace and the cgroup.
import { execFileSync, spawnSync } from "node:child_process";
import { chmodSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parsePolicy } from "../../src/config/index.ts";
import { Attribution } from "../../src/attribution/index.ts";
import { Datapath } from "../../src/datapath/datapath.ts";
import { compilePolicy } from "../../src/policy/compile/policy-image.ts";
import { readProcessUniverse } from "../../src/host/process-universe.ts";
import { testCgroup, type TestCgroup } from "./cgroup-run.ts";

/** setpriv's arguments: what follows runs as nobody, without groups. */
export const NOBODY = ["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups"];

export class PathRuleLab {
  /** The network namespace's name (moat-test-KIND-PID). */
  readonly ns: string;
  readonly cg: TestCgroup;
  /** A directory (mode 755) removed with the lab. */
  readonly work: string;
  /** The datapath; a test may stop it and start another. */
  dp: Datapath | undefined;
  /** The TCP port the policies allow by path. */
  readonly port: number;

  /** The lab of `kind` whose policies allow TCP `port` by path; what was made is removed if a step fails. */
  constructor(kind: string, port: number) {
    this.port = port;
    this.ns = `moat-test-${kind}-${process.pid}`;
    const made: (() => unknown)[] = [];
    try {
      this.work = mkdtempSync(join(tmpdir(), `moat-${kind}-`));
      made.push(() => rmSync(this.work, { recursive: true, force: true }));
      chmodSync(this.work, 0o755);
      this.cg = testCgroup(kind);
      made.push(() => this.cg.remove());
      execFileSync("ip", ["netns", "add", this.ns]);
      made.push(() => spawnSync("ip", ["netns", "del", this.ns]));
      execFileSync("ip", ["-n", this.ns, "link", "set", "lo", "up"]);
      this.dp = Datapath.start({ interfaces: [], pinRoot: null, cgroup: this.cg.dir });
    } catch (err) {
      eachTried(made.reverse());
      throw err;
    }
  }

  /** Applies a policy that blocks egress but to the port, from the executables at `paths`. */
  allowOnly(paths: string[]): void {
    const text = `version: 1
mode: prevent
defaults: { ingress: allow, egress: block }
attach: { cgroup: ${this.cg.cgroup} }
rules:
  - { name: by-path, direction: egress, action: allow, layer4: { protocol: tcp, port: [${this.port}] }, process: { path: [${paths.join(", ")}] } }
`;
    const model = parsePolicy(text, "p.yaml");
    const attribution = new Attribution({
      roots: { docker: [], containerd: [], containersStorage: [], homes: () => [] },
    });
    this.dp!.apply(compilePolicy(model, readProcessUniverse(model, attribution)));
  }

  /** nsenter's arguments: `cmd` as nobody, in the lab's netns and cgroup. */
  asNobody(cmd: string[]): string[] {
    return [
      `--net=/run/netns/${this.ns}`,
      "sh",
      "-c",
      `echo $$ > ${this.cg.dir}/cgroup.procs && exec "$@"`,
      "sh",
      ...NOBODY,
      ...cmd,
    ];
  }

  /** Stops the datapath, removes the namespace, the cgroup and the work directory: each tried. */
  remove(): void {
    eachTried([
      () => this.dp?.stop(),
      () => spawnSync("ip", ["netns", "del", this.ns]),
      () => this.cg.remove(),
      () => rmSync(this.work, { recursive: true, force: true }),
    ]);
  }
}

/** Runs every step, in order, whichever of them throws. */
function eachTried(steps: (() => unknown)[]): void {
  for (const step of steps) {
    try {
      step();
    } catch {
      // best effort: the next step still runs
    }
  }
}

// An XDP test run of a program that is not attached anywhere swaps it into the kernel's XDP
// dispatcher and out again, and each swap waits for an RCU grace period: milliseconds when the
// machine is idle, seconds or worse under load. Attaching the program to a veth made for the
// purpose keeps it in the dispatcher, so test runs cost what the program costs.
import { spawnSync } from "node:child_process";
import { native } from "../../src/datapath/addon.ts";
import type { BpfProgram } from "../../src/datapath/native.d.ts";

export interface XdpAnchor {
  release(): void;
}

let made = 0;

export function anchorXdp(program: BpfProgram): XdpAnchor {
  const tag = `${process.pid % 100000}x${made++}`;
  const a = `mtx${tag}a`;
  const b = `mtx${tag}b`;
  const ip = (...args: string[]) => spawnSync("ip", args, { stdio: "ignore" }).status;
  ip("link", "del", a); // left by a killed run
  if (ip("link", "add", a, "type", "veth", "peer", "name", b) !== 0) {
    throw new Error(`cannot create veth ${a} for the XDP anchor`);
  }
  try {
    const link = program.attachXdp(native().ifindex(a), "native");
    return {
      release() {
        link.destroy();
        ip("link", "del", a);
      },
    };
  } catch (err) {
    ip("link", "del", a);
    throw err;
  }
}

// What process and interface rules name on this host (executables, users, cgroups and their
// containers, links and routes) comes and goes: the policy is compiled against what is there
// now, and compiled again when that changes, noticed by a periodic re-read and at once when a
// cgroup (a container) appears.
import type { Attribution } from "../attribution/index.ts";
import type { PolicyModel } from "../config/index.ts";
import { namesProcesses, type ProcessUniverse } from "../policy/index.ts";
import { readProcessUniverse, universeFingerprint, watchCgroups } from "../host/index.ts";

/** How often the executables, users and cgroups that process rules name are read again. */
const UNIVERSE_MS = 3000;

export interface HostUniverse {
  /** Reads what `model`'s process rules name; the compiler's universe. */
  read(model: PolicyModel): ProcessUniverse;
  /** Whether what `model`'s process rules name differs from the last read. */
  changed(model: PolicyModel): boolean;
}

export function hostUniverse(attribution: Attribution): HostUniverse {
  let resolved = "";
  return {
    read(model) {
      const u = readProcessUniverse(model, attribution);
      resolved = universeFingerprint(u);
      return u;
    },
    changed(model) {
      if (!namesProcesses(model)) return false;
      return universeFingerprint(readProcessUniverse(model, attribution)) !== resolved;
    },
  };
}

/** Calls `check` every few seconds and whenever a cgroup appears under `cgroupMount`. */
export function watchHost(check: () => void, cgroupMount: string | null): { close(): void } {
  const timer = setInterval(check, UNIVERSE_MS);
  timer.unref();
  // a new cgroup (a container starting) is resolved at once, not at the next re-read
  const cgroups = cgroupMount ? watchCgroups(cgroupMount, check) : null;
  return {
    close() {
      clearInterval(timer);
      cgroups?.close();
    },
  };
}

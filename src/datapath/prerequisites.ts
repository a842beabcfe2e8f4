// What moat cannot run without, each missing piece named in one sentence with how to get it.
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { release } from "node:os";
import { join } from "node:path";
import { findCgroup2Mount, missingCgroup } from "../attribution/cgroup-mount.ts";

export class PrerequisiteError extends Error {
  readonly code = "EPREREQ";
  constructor(message: string) {
    super(message);
    this.name = "PrerequisiteError";
  }
}

/** Mount point of the cgroup v2 hierarchy, from /proc/self/mountinfo (never hard-coded). */
export const cgroup2Mount = (): string | null => findCgroup2Mount()?.mountPoint ?? null;

/**
 * The directory of attach.cgroup (a path inside the cgroup v2 hierarchy, "/" for all of it),
 * or undefined when the policy names none. Throws PrerequisiteError when it does not exist.
 */
export function cgroupDirectory(cgroup: string | undefined): string | undefined {
  if (cgroup === undefined) return undefined;
  const mount = cgroup2Mount();
  if (!mount)
    throw new PrerequisiteError(
      "attach.cgroup needs the cgroup v2 hierarchy mounted, and none is; mount it with 'mount -t cgroup2 none /sys/fs/cgroup' (systemd does at boot), or take attach.cgroup out of the policy.",
    );
  const missing = missingCgroup(cgroup, mount);
  if (missing) throw new PrerequisiteError(missing);
  return join(mount, cgroup);
}

function bpffsMounted(mountinfo: string): boolean {
  return mountinfo.split("\n").some((l) => l.includes(" /sys/fs/bpf ") && l.includes(" - bpf "));
}

export function checkPrerequisites(): void {
  if (process.getuid?.() !== 0) {
    throw new PrerequisiteError(
      "moat must run as root (loading eBPF programs needs it); run it with sudo.",
    );
  }
  if (!existsSync("/sys/kernel/btf/vmlinux")) {
    throw new PrerequisiteError(
      "this kernel has no BTF (/sys/kernel/btf/vmlinux is missing); boot a kernel built with CONFIG_DEBUG_INFO_BTF=y.",
    );
  }
  const [major = 0, minor = 0] = release().split(".").map(Number);
  if (major < 6 || (major === 6 && minor < 1)) {
    throw new PrerequisiteError(
      `kernel ${release()} is too old; moat needs Linux 6.1 or newer (Debian 12's kernel or later).`,
    );
  }
  mountBpffs();
}

/** Pins need the BPF filesystem; mount it where the system has not (as systemd would). */
function mountBpffs(): void {
  if (bpffsMounted(readFileSync("/proc/self/mountinfo", "utf8"))) return;
  try {
    execFileSync("mount", ["-t", "bpf", "bpf", "/sys/fs/bpf"], { stdio: "pipe" });
  } catch (err) {
    throw new PrerequisiteError(
      `the BPF filesystem is not mounted at /sys/fs/bpf and mounting it failed (${(err as Error).message.trim()}); mount it with 'mount -t bpf bpf /sys/fs/bpf'.`,
    );
  }
}

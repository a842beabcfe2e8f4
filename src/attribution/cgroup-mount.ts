// Where the cgroup v2 hierarchy is mounted: /sys/fs/cgroup on unified hosts, elsewhere on hybrid
// ones (/sys/fs/cgroup/unified here). Read from mountinfo, never assumed.

import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";

export interface Cgroup2Mount {
  /** Where it is mounted, e.g. /sys/fs/cgroup/unified. */
  mountPoint: string;
  /** The cgroup the mount shows as its top ("/" unless mounted from inside a cgroup namespace). */
  root: string;
}

/** mountinfo escapes space, tab, newline and backslash as \ooo. */
const unescape = (field: string): string =>
  field.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)));

export function parseMountinfo(text: string): Cgroup2Mount | null {
  for (const line of text.split("\n")) {
    // id parent major:minor root mountpoint options [optional...] - fstype source superoptions
    const [left, right] = line.split(" - ");
    if (!left || !right || right.split(" ")[0] !== "cgroup2") continue;
    const fields = left.split(" ");
    const root = fields[3];
    const mountPoint = fields[4];
    if (root && mountPoint) return { mountPoint: unescape(mountPoint), root: unescape(root) };
  }
  return null;
}

export function findCgroup2Mount(mountinfo = "/proc/self/mountinfo"): Cgroup2Mount | null {
  try {
    return parseMountinfo(readFileSync(mountinfo, "utf8"));
  } catch {
    return null;
  }
}

/**
 * Why attach.cgroup `cgroup` (a path inside the hierarchy mounted at `mount`) names no cgroup;
 * null: it names one. A cgroup's full path (under the mount point) gets the path to write.
 */
export function missingCgroup(cgroup: string, mount: string): string | null {
  const dir = join(mount, cgroup);
  if (existsSync(dir)) return null;
  const under = cgroup === mount || cgroup.startsWith(`${mount}/`);
  if (under && existsSync(cgroup)) {
    const meant = `/${cgroup.slice(mount.length).replace(/^\/+/, "")}`;
    return `attach.cgroup ${cgroup}: a path inside the cgroup v2 hierarchy (mounted at ${mount}) is meant: write ${meant}`;
  }
  return `attach.cgroup ${cgroup}: ${dir} does not exist`;
}

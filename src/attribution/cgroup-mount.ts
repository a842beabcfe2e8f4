// Where the cgroup v2 hierarchy is mounted: /sys/fs/cgroup on unified hosts, elsewhere on hybrid
// ones (/sys/fs/cgroup/unified here). Read from mountinfo, never assumed.

import { readFileSync } from "node:fs";

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

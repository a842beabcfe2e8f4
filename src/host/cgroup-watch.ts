// Calls back soon after a cgroup directory appears or goes anywhere under the cgroup v2 mount
// (inotify works on cgroupfs), and when one gains its first process or loses its last (the
// kernel writes cgroup.events then): a container's cgroup is resolved for process rules, and
// its network namespace found, within milliseconds, not at a periodic re-read.
import { watch, type FSWatcher } from "node:fs";

/** Coalesces a burst (a new cgroup brings a dozen files) into one call after `settleMs`. */
export function watchCgroups(
  mountPoint: string,
  onChange: () => void,
  settleMs = 20,
): { close(): void } {
  let timer: NodeJS.Timeout | null = null;
  let watcher: FSWatcher | null = null;
  const fire = () => {
    timer = null;
    onChange();
  };
  try {
    watcher = watch(mountPoint, { recursive: true, persistent: false }, (_event, name) => {
      // directories and cgroup.events matter; the other files inside a new cgroup follow it
      if (name && /(^|\/)(cgroup|cpu|io|memory|pids)\.[^/]*$/.test(name)) {
        if (!/(^|\/)cgroup\.events$/.test(name)) return;
      }
      timer ??= setTimeout(fire, settleMs);
    });
    watcher.on("error", () => watcher?.close());
  } catch {
    // no inotify here: the slow re-read still finds new cgroups
  }
  return {
    close() {
      if (timer) clearTimeout(timer);
      watcher?.close();
    },
  };
}

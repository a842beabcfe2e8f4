// Calls `onChange` once after a burst of entries created, removed, renamed or written in any of a
// set of directories (inotify, one watch per directory, not recursive): a binary installed or
// replaced where a process rule's path glob looks, /etc/passwd rewritten. A directory that does
// not exist is skipped (the slow re-read finds what appears there later).
import { watch, type FSWatcher } from "node:fs";

export interface WatchedDir {
  dir: string;
  /** only these names in it count; absent = every name */
  names?: string[];
}

export interface DirWatch {
  /** Watches exactly these directories from now on (unchanged ones keep their watcher). */
  set(dirs: readonly WatchedDir[]): void;
  close(): void;
}

export function watchDirs(onChange: () => void, settleMs = 100): DirWatch {
  const watched = new Map<string, { watcher: FSWatcher; names: Set<string> | null }>();
  let timer: NodeJS.Timeout | undefined;
  const fire = () => {
    timer ??= setTimeout(() => {
      timer = undefined;
      onChange();
    }, settleMs);
  };
  return {
    set(dirs) {
      const wanted = new Map<string, Set<string> | null>();
      for (const { dir, names } of dirs) {
        const had = wanted.get(dir);
        // one entry watching every name wins over any that names some
        if (had === null || !names) wanted.set(dir, null);
        else wanted.set(dir, new Set([...(had ?? []), ...names]));
      }
      for (const [dir, entry] of watched) {
        if (wanted.has(dir)) continue;
        entry.watcher.close();
        watched.delete(dir);
      }
      for (const [dir, names] of wanted) {
        const entry = watched.get(dir);
        if (entry) {
          entry.names = names;
          continue;
        }
        let watcher: FSWatcher;
        try {
          watcher = watch(dir, { persistent: false });
        } catch {
          continue; // not there (yet)
        }
        const added = { watcher, names };
        watcher.on("change", (_event, name) => {
          if (!added.names || (name && added.names.has(name.toString()))) fire();
        });
        watcher.on("error", () => {
          watcher.close();
          watched.delete(dir);
        });
        watched.set(dir, added);
      }
    },
    close() {
      for (const { watcher } of watched.values()) watcher.close();
      watched.clear();
      clearTimeout(timer);
    },
  };
}

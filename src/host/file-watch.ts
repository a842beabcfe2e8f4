// Calls `onChange` once after a burst of changes to any of `paths` (editors write in steps;
// some replace the file by rename, so the parent directory is watched, not the inode). Setting
// the paths again (every applied policy does) keeps the watcher of a directory still watched:
// a change whose event is not read yet, or whose debounce runs, is never lost to a re-set.
// `onBurst` is called at a burst's first event, a debounce before `onChange`: what the change
// will need can be readied meanwhile (the daemon starts its policy worker then).
import { watch, type FSWatcher } from "node:fs";
import { basename, dirname } from "node:path";

export interface FileWatch {
  set(paths: string[]): void;
  close(): void;
}

export function watchFiles(
  onChange: () => void,
  debounceMs = 150,
  onBurst?: () => void,
): FileWatch {
  /** Directory -> its watcher and the names in it that count (updated in place by set()). */
  const watched = new Map<string, { watcher: FSWatcher; names: Set<string> }>();
  let timer: NodeJS.Timeout | undefined;
  const settled = () => {
    timer = undefined;
    onChange();
  };
  const fire = () => {
    if (timer === undefined) onBurst?.();
    clearTimeout(timer);
    timer = setTimeout(settled, debounceMs);
  };
  return {
    set(paths) {
      const byDir = new Map<string, Set<string>>();
      for (const p of paths) {
        const names = byDir.get(dirname(p)) ?? new Set<string>();
        names.add(basename(p));
        byDir.set(dirname(p), names);
      }
      for (const [dir, entry] of watched) {
        if (byDir.has(dir)) continue;
        entry.watcher.close();
        watched.delete(dir);
      }
      for (const [dir, names] of byDir) {
        const entry = watched.get(dir);
        if (entry) {
          entry.names = names;
          continue;
        }
        const added = { names, watcher: watch(dir) };
        added.watcher.on("change", (_event, name) => {
          if (name && added.names.has(name.toString())) fire();
        });
        added.watcher.unref();
        watched.set(dir, added);
      }
    },
    close() {
      for (const { watcher } of watched.values()) watcher.close();
      watched.clear();
      clearTimeout(timer);
      timer = undefined;
    },
  };
}

// Calls `onChange` once after a burst of changes to any of `paths` (editors write in steps;
// some replace the file by rename, so the parent directory is watched, not the inode).
import { watch, type FSWatcher } from "node:fs";
import { basename, dirname } from "node:path";

export interface FileWatch {
  set(paths: string[]): void;
  close(): void;
}

export function watchFiles(onChange: () => void, debounceMs = 150): FileWatch {
  let watchers: FSWatcher[] = [];
  let timer: NodeJS.Timeout | undefined;
  const fire = () => {
    clearTimeout(timer);
    timer = setTimeout(onChange, debounceMs);
  };
  const close = () => {
    for (const w of watchers) w.close();
    watchers = [];
    clearTimeout(timer);
  };
  return {
    set(paths) {
      close();
      const byDir = new Map<string, Set<string>>();
      for (const p of paths) {
        const names = byDir.get(dirname(p)) ?? new Set<string>();
        names.add(basename(p));
        byDir.set(dirname(p), names);
      }
      for (const [dir, names] of byDir) {
        const w = watch(dir, (_event, name) => {
          if (name && names.has(name.toString())) fire();
        });
        w.unref();
        watchers.push(w);
      }
    },
    close,
  };
}

// Node's compile cache (V8's code for the modules a process loads, kept on disk) for the daemon and
// its worker threads: a policy worker started for a reload reads its modules' code instead of
// compiling it again (and, run from src/, stripping their types).
//
// What is in the cache runs as root, unchecked: it lives in the state directory
// ($MOAT_STATE_DIR/compile-cache, default /var/lib/moat/compile-cache), on a path only root can
// change (trustedDirectory), in a real directory of root's that group and others can neither
// read nor write (0700). One that is not is refused with the reason, and moat runs without a
// cache. Node writes each entry to a temporary file and renames it into place, and checks an
// entry's size and checksum against its source when reading it: daemons may share the directory
// at the same time (tests run many).
import { lstatSync, mkdirSync } from "node:fs";
import { constants, enableCompileCache, getCompileCacheDir } from "node:module";
import { join } from "node:path";
import { stateDirectory } from "./state-dir.ts";
import { trustedDirectory } from "./trusted-file.ts";

/** The cache's directory in the state directory. */
const COMPILE_CACHE_NAME = "compile-cache";

/** The directory, or why it is not safe to use. */
export type CompileCacheDir = { dir: string } | { refused: string };

const octal = (mode: number) => (mode & 0o7777).toString(8).padStart(4, "0");

/**
 * The compile cache's directory in `stateDir`, when it is safe to run what it holds; the state
 * directory and the cache's are made 0700 when missing.
 */
export function compileCacheDir(stateDir: string): CompileCacheDir {
  let state: string;
  try {
    state = trustedDirectory(stateDir, { what: "state directory", create: true });
  } catch (err) {
    return { refused: (err as Error).message };
  }
  const dir = join(state, COMPILE_CACHE_NAME);
  const refused = (why: string) => ({ refused: `compile cache ${dir}: ${why}` });
  try {
    mkdirSync(dir, { mode: 0o700 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EEXIST") return refused((err as Error).message);
  }
  const st = lstatSync(dir);
  if (st.isSymbolicLink()) return refused("is a symlink; refusing to follow it");
  if (!st.isDirectory()) return refused("is not a directory");
  if (st.uid !== process.geteuid?.())
    return refused(`is owned by ${st.uid === 0 ? "root" : `uid ${st.uid}`}, not root`);
  if ((st.mode & 0o077) !== 0)
    return refused(
      `is open to group or others (mode ${octal(st.mode)}); make it 0700 (chmod 700) or remove it`,
    );
  return { dir };
}

/**
 * Enables the compile cache of the state directory for this process (the modules it loads from
 * now on), and (through NODE_COMPILE_CACHE) for the worker threads and Node processes it starts
 * afterwards; only as root.
 * One the environment chose already (NODE_COMPILE_CACHE, NODE_DISABLE_COMPILE_CACHE: root's
 * environment, which can give Node code anyway) is left as it is. Returns a warning for the
 * daemon's log when the directory is not safe to use, or the cache could not be enabled.
 */
export function useCompileCache(): string | undefined {
  if (process.geteuid?.() !== 0) return undefined;
  if (getCompileCacheDir() !== undefined) return undefined;
  if (process.env.NODE_COMPILE_CACHE || process.env.NODE_DISABLE_COMPILE_CACHE) return undefined;
  const choice = compileCacheDir(stateDirectory());
  if ("refused" in choice)
    return `warning: ${choice.refused}; not used: moat compiles its code at each start`;
  const result = enableCompileCache(choice.dir);
  if (result.status !== constants.compileCacheStatus.ENABLED)
    return `warning: compile cache ${choice.dir} not enabled: ${result.message ?? "no reason given"}`;
  // a worker thread reads it when it starts, as a child process does
  process.env.NODE_COMPILE_CACHE = result.directory ?? choice.dir;
  return undefined;
}

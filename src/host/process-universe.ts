// What the process and interface rules can name on this host, read for the compiler
// (src/policy/compile/process.ts): the executables their path globs match (by real path, as /proc/PID/exe
// shows it) and those that running processes exec'd there before they were replaced, user names,
// every cgroup with its container (when a rule names a cgroup or a container), and the route
// mirror's links and routes. Read at load and again when the daemon's host watch reports a change.
import {
  closeSync,
  constants,
  lstatSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  realpathSync,
  statSync,
} from "node:fs";
import { dirname, join } from "node:path";
import type { PolicyModel } from "../config/model.ts";
import type { Attribution } from "../attribution/index.ts";
import { fileIdentities } from "../attribution/file-identity.ts";
import { globMatch } from "../policy/glob.ts";
import {
  socketRule,
  universeQuery,
  type ProcessUniverse,
  type UniverseQuery,
} from "../policy/compile/process.ts";
import { withRedirects } from "../policy/compile/redirect.ts";
import { withImplicitRules } from "../policy/implicit-rules.ts";
import { perModel } from "../policy/per-model.ts";
import type { WatchedDir } from "./dir-watch.ts";
import { imageFingerprint, readRouteImageSync, type BuiltImage } from "../route/index.ts";

/** This namespace's links and routes for interface rules (the daemon keeps one current read). */
export type RouteReader = () => BuiltImage;

/** A path glob walks at most this many directory entries. */
const WALK_LIMIT = 200_000;

/** The directory a glob's matches live under: everything before its first wildcard. */
export function globRoot(pattern: string): string {
  const wild = pattern.search(/[*?]/);
  return wild < 0 ? pattern : dirname(pattern.slice(0, wild + 1));
}

function* files(root: string, budget: { left: number }): Generator<string> {
  let st;
  try {
    st = lstatSync(root);
  } catch {
    return;
  }
  if (st.isFile() || st.isSymbolicLink()) {
    yield root;
    return;
  }
  if (!st.isDirectory()) return;
  let entries;
  try {
    entries = readdirSync(root, { withFileTypes: true });
  } catch {
    return;
  }
  for (const e of entries) {
    if (--budget.left < 0) return;
    const path = join(root, e.name);
    if (e.isDirectory()) yield* files(path, budget);
    else if (e.isFile() || e.isSymbolicLink()) yield path;
  }
}

/** Executables the rules' path globs match, each once, by real path, as the kernel knows them. */
function executables(patterns: string[]): ProcessUniverse["executables"] {
  const found = new Set<string>();
  for (const pattern of patterns) {
    const budget = { left: WALK_LIMIT };
    for (const path of files(globRoot(pattern), budget)) {
      let real;
      try {
        real = realpathSync(path);
      } catch {
        continue;
      }
      if (found.has(real) || !globMatch(pattern, real)) continue;
      if (isFile(real)) found.add(real);
    }
  }
  return [...fileIdentities([...found])].map(([path, id]) => ({ ...id, path }));
}

function isFile(path: string): boolean {
  try {
    return statSync(path).isFile();
  } catch {
    return false; // removed while walking
  }
}

/** At most this many replaced executables are kept matching (distinct files, not processes). */
const REPLACED_LIMIT = 1024;
const DELETED = " (deleted)";

/**
 * Executables that running processes exec'd at a path a rule's glob matches, since removed from
 * it (an upgrade renames a new file over the old one): such a process still runs the rule's
 * program. Each under the path it had.
 */
function replacedExecutables(
  patterns: string[],
  procRoot = "/proc",
): ProcessUniverse["executables"] {
  if (patterns.length === 0) return [];
  const formerPath = removedExecutables(patterns, procRoot);
  const mounts = new Map<string, number | null>();
  const mountHere = (dir: string) => {
    if (!mounts.has(dir)) mounts.set(dir, directoryMount(dir));
    return mounts.get(dir);
  };
  // /proc/PID/exe shows a removed file's last path as seen from moat's mount namespace, and a
  // process can make its own file read the same: one named "<path> (deleted)" where it may add
  // files, or one of another mount namespace mounted over the rule's directory there. So the
  // file must have no link left, and be on the mount that holds the directory here.
  const removedHere = (exe: string, fd: number, st: { nlink: bigint }) => {
    const mount = descriptorMount(fd);
    return st.nlink === 0n && mount !== null && mount === mountHere(dirname(formerPath.get(exe)!));
  };
  return [...fileIdentities([...formerPath.keys()], removedHere)].map(([exe, id]) => ({
    ...id,
    path: formerPath.get(exe)!,
  }));
}

/**
 * /proc/PID/exe -> the path it was exec'd at, for the processes whose executable was removed from
 * a path some pattern matches: one process a file, at most REPLACED_LIMIT files.
 */
function removedExecutables(patterns: string[], procRoot: string): Map<string, string> {
  const formerPath = new Map<string, string>();
  const files = new Set<string>();
  for (const pid of readdirSync(procRoot)) {
    if (formerPath.size >= REPLACED_LIMIT) break;
    if (!/^\d+$/.test(pid)) continue;
    const exe = join(procRoot, pid, "exe");
    let target;
    try {
      target = readlinkSync(exe);
    } catch {
      continue; // exited, or a kernel thread
    }
    if (!target.endsWith(DELETED)) continue;
    const path = target.slice(0, -DELETED.length);
    if (!patterns.some((p) => globMatch(p, path))) continue;
    let st;
    try {
      st = statSync(exe, { bigint: true });
    } catch {
      continue;
    }
    const file = `${st.dev}:${st.ino}`;
    if (files.has(file)) continue;
    files.add(file);
    formerPath.set(exe, path);
  }
  return formerPath;
}

/** The id of the mount an open descriptor of this process is on (/proc/self/fdinfo). */
function descriptorMount(fd: number): number | null {
  try {
    const m = /^mnt_id:\s*(\d+)$/m.exec(readFileSync(`/proc/self/fdinfo/${fd}`, "utf8"));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

/** The id of the mount that holds directory `dir` in this mount namespace. */
function directoryMount(dir: string): number | null {
  let fd;
  try {
    fd = openSync(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  } catch {
    return null;
  }
  try {
    return descriptorMount(fd);
  } finally {
    closeSync(fd);
  }
}

export function readProcessUniverse(
  model: PolicyModel,
  attribution: Attribution,
  routes: RouteReader = () => readRouteImageSync(),
): ProcessUniverse {
  return readQueriedUniverse(universeQuery(model), attribution, routes);
}

/** What `query` asks of this host (the daemon answers it for the policy worker). */
export function readQueriedUniverse(
  query: UniverseQuery,
  attribution: Attribution,
  routes: RouteReader = () => readRouteImageSync(),
): ProcessUniverse {
  const users = new Map<string, number>();
  for (const n of query.users) {
    const uid = attribution.users.uidOf(n);
    if (uid !== undefined) users.set(n, uid);
  }
  return {
    executables: [...executables(query.paths), ...replacedExecutables(query.paths)],
    users,
    // rules naming cgroups or containers only: the many that come and go change nothing else
    cgroups: query.cgroups ? cgroupsOf(attribution) : [],
    // interface rules only: this namespace's links and routes
    routes: query.routes ? routes() : { image: { v4: [], v6: [] }, links: [], notes: [] },
  };
}

/** Every cgroup directory now, with its container if it is one's. */
function cgroupsOf(attribution: Attribution): ProcessUniverse["cgroups"] {
  return [...(attribution.cgroups?.all() ?? new Map<bigint, string>())].map(([id, path]) => ({
    id,
    path,
    container: attribution.containerOf(path),
  }));
}

/** The directories whose entries decide what `model`'s process rules resolve to. */
export const processDirectories = perModel((model: PolicyModel): readonly WatchedDir[] => {
  // moat's own rules too: a local decision's executable is watched as a rule's is
  const rules = withRedirects(withImplicitRules(model)).rules.filter(socketRule);
  const dirs: WatchedDir[] = rules
    .flatMap((r) => r.process?.path ?? [])
    .map((pattern) => ({ dir: globRoot(pattern) }));
  if (rules.some((r) => (r.process?.user ?? []).some((u) => typeof u === "string")))
    dirs.push({ dir: "/etc", names: ["passwd"] }); // replaced by rename: the directory is watched
  return dirs;
});

/** Equal for two reads of an unchanged host: the daemon re-applies the policy when it differs. */
export function universeFingerprint(u: ProcessUniverse): string {
  const exe = u.executables.map((e) => `${e.dev}:${e.ino}:${e.gen ?? 0}:${e.path}`).sort();
  const users = [...u.users].map(([n, id]) => `${n}:${id}`).sort();
  const cgroups = u.cgroups.map((c) => `${c.id}:${c.path}:${c.container?.id ?? ""}`).sort();
  const links = u.routes.links
    .map(
      (l) =>
        `${l.ifindex}:${l.ifname}:${l.tunnel}:${l.master ?? ""}:${l.lower ?? ""}:${l.mac ?? ""}`,
    )
    .sort();
  return JSON.stringify([exe, users, cgroups, links, imageFingerprint(u.routes.image)]);
}

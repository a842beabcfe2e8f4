// What the process and interface rules can name on this host, read for the compiler
// (src/policy/compile/process.ts): the executables their path globs match (by real path, as /proc/PID/exe
// shows it), user names, every cgroup with its container, and the route mirror's links and
// routes. Read at load and again when the daemon's host watch reports a change.
import { lstatSync, readdirSync, realpathSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import type { PolicyModel } from "../config/model.ts";
import { kernelDev, type Attribution } from "../attribution/index.ts";
import { globMatch } from "../policy/glob.ts";
import {
  socketRule,
  universeQuery,
  type ProcessUniverse,
  type UniverseQuery,
} from "../policy/compile/process.ts";
import { withRedirects } from "../policy/compile/redirect.ts";
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

/** Executables the rules' path globs match, each once, by real path. */
function executables(patterns: string[]): ProcessUniverse["executables"] {
  const seen = new Map<string, ProcessUniverse["executables"][number]>();
  for (const pattern of patterns) {
    const budget = { left: WALK_LIMIT };
    for (const path of files(globRoot(pattern), budget)) {
      let real;
      try {
        real = realpathSync(path);
      } catch {
        continue;
      }
      if (seen.has(real) || !globMatch(pattern, real)) continue;
      try {
        const st = statSync(real, { bigint: true });
        if (st.isFile())
          seen.set(real, { dev: kernelDev(Number(st.dev)), ino: st.ino, path: real });
      } catch {
        // removed while walking
      }
    }
  }
  return [...seen.values()];
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
  const cgroups = [...(attribution.cgroups?.all() ?? new Map<bigint, string>())].map(
    ([id, path]) => ({ id, path, container: attribution.containerOf(path) }),
  );
  return {
    executables: executables(query.paths),
    users,
    cgroups,
    // interface rules only: this namespace's links and routes
    routes: query.routes ? routes() : { image: { v4: [], v6: [] }, links: [], notes: [] },
  };
}

/** The directories whose entries decide what `model`'s process rules resolve to. */
export function processDirectories(model: PolicyModel): WatchedDir[] {
  const rules = withRedirects(model).rules.filter(socketRule);
  const dirs: WatchedDir[] = rules
    .flatMap((r) => r.process?.path ?? [])
    .map((pattern) => ({ dir: globRoot(pattern) }));
  if (rules.some((r) => (r.process?.user ?? []).some((u) => typeof u === "string")))
    dirs.push({ dir: "/etc", names: ["passwd"] }); // replaced by rename: the directory is watched
  return dirs;
}

/** Equal for two reads of an unchanged host: the daemon re-applies the policy when it differs. */
export function universeFingerprint(u: ProcessUniverse): string {
  const exe = u.executables.map((e) => `${e.dev}:${e.ino}:${e.path}`).sort();
  const users = [...u.users].map(([n, id]) => `${n}:${id}`).sort();
  const cgroups = u.cgroups.map((c) => `${c.id}:${c.path}:${c.container?.id ?? ""}`).sort();
  const links = u.routes.links.map((l) => `${l.ifindex}:${l.ifname}:${l.tunnel}`).sort();
  return JSON.stringify([exe, users, cgroups, links, imageFingerprint(u.routes.image)]);
}

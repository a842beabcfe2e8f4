// The import boundaries of src/, checked by `npm run check`: no import cycles (type imports
// included); each folder imports only from the layers below it or beside it; the daemon and the
// CLI import another folder only through its face (its index.ts; the daemon's is daemon.ts); and
// src/policy and src/config (the evaluator, the compiler and the policy loader, which a browser
// runs too) reach nothing from `node:`, not even through what they import; web/ (the browser's
// console) imports only those two and itself. Prints each violation and exits 1 if there is one.
import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** The repository (or, for the script's own test, the directory given as the first argument). */
const ROOT = resolve(process.argv[2] ?? join(dirname(fileURLToPath(import.meta.url)), ".."));
const SRC = join(ROOT, "src");

/** Top to bottom: a layer imports only from layers below it and from the side folders. */
const LAYERS = ["cli", "daemon", "api", "observe", "datapath", "policy", "config"];
/**
 * Beside the layers: what the daemon and datapath use to know the host. Each may import from the
 * layers at or below `below` and from the side folders listed, never from above.
 */
const SIDE: Record<string, { below: string; sides: string[] }> = {
  attribution: { below: "config", sides: [] },
  route: { below: "config", sides: [] },
  redirect: { below: "datapath", sides: [] },
  dns: { below: "datapath", sides: ["attribution"] },
  l7: { below: "datapath", sides: ["attribution"] },
  host: { below: "policy", sides: ["attribution", "route"] },
  sshd: { below: "config", sides: [] },
  fleet: { below: "config", sides: [] },
};
/** Folders whose runtime imports may not reach `node:` (they run in the browser too). */
const PURE = ["policy", "config"];
/** Folders that import others only through their face. */
const THROUGH_FACES = ["cli", "daemon"];
const faceOf = (folder: string): string =>
  join(SRC, folder === "daemon" ? "daemon.ts" : join(folder, "index.ts"));

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return files(path);
    return name.endsWith(".ts") ? [path] : [];
  });
}

interface Import {
  to: string;
  typeOnly: boolean;
}

const IMPORT =
  /^\s*(import|export)\s+(type\s+)?(?:[^"';]*?\sfrom\s+)?["']([^"']+)["']|import\(\s*["']([^"']+)["']\s*\)/gm;

function importsOf(path: string): Import[] {
  const text = readFileSync(path, "utf8");
  const out: Import[] = [];
  for (const m of text.matchAll(IMPORT)) {
    const spec = m[3] ?? m[4] ?? "";
    const typeOnly = m[2] !== undefined;
    if (spec.startsWith(".")) out.push({ to: resolve(dirname(path), spec), typeOnly });
    else if (spec.startsWith("node:")) out.push({ to: spec, typeOnly });
  }
  return out;
}

/** src/FOLDER/... -> FOLDER; src/daemon.ts -> daemon. */
const folderOf = (path: string): string => {
  const rel = relative(SRC, path);
  const first = rel.split("/")[0] ?? "";
  return first.endsWith(".ts") ? first.slice(0, -3) : first;
};

function allowed(from: string, to: string): boolean {
  if (from === to) return true;
  const rank = (f: string) => LAYERS.indexOf(f);
  const side = SIDE[from];
  if (side) return (rank(to) >= rank(side.below) && rank(to) >= 0) || side.sides.includes(to);
  if (rank(from) < 0) return true; // a folder this check does not know yet
  if (rank(to) >= 0) return rank(to) > rank(from);
  // a side folder is usable by the layers above what it may import
  const s = SIDE[to];
  return s !== undefined && rank(from) < rank(s.below);
}

const graph = new Map<string, Import[]>();
for (const f of files(SRC)) graph.set(f, importsOf(f));
const problems: string[] = [];
const rel = (p: string) => relative(ROOT, p);

for (const [from, imports] of graph) {
  for (const i of imports) {
    if (i.to.startsWith("node:")) continue;
    if (!graph.has(i.to)) {
      problems.push(`${rel(from)}: imports ${rel(i.to)}, which is not a source file`);
      continue;
    }
    const [a, b] = [folderOf(from), folderOf(i.to)];
    if (!allowed(a, b)) problems.push(`${rel(from)}: ${a} may not import ${b} (${rel(i.to)})`);
    else if (a !== b && THROUGH_FACES.includes(a) && i.to !== faceOf(b))
      problems.push(`${rel(from)}: imports ${rel(i.to)}; import ${rel(faceOf(b))} instead`);
  }
}

// cycles: strongly connected components of more than one file (Tarjan)
let counter = 0;
const index = new Map<string, number>();
const low = new Map<string, number>();
const stack: string[] = [];
const onStack = new Set<string>();
function connect(v: string): void {
  index.set(v, counter);
  low.set(v, counter++);
  stack.push(v);
  onStack.add(v);
  for (const { to } of graph.get(v) ?? []) {
    if (!graph.has(to)) continue;
    if (!index.has(to)) {
      connect(to);
      low.set(v, Math.min(low.get(v) ?? 0, low.get(to) ?? 0));
    } else if (onStack.has(to)) low.set(v, Math.min(low.get(v) ?? 0, index.get(to) ?? 0));
  }
  if (low.get(v) !== index.get(v)) return;
  const component: string[] = [];
  let w: string | undefined;
  do {
    w = stack.pop();
    if (w === undefined) break;
    onStack.delete(w);
    component.push(w);
  } while (w !== v);
  if (component.length > 1)
    problems.push(`import cycle: ${component.map(rel).sort().join(" <-> ")}`);
}
for (const v of graph.keys()) if (!index.has(v)) connect(v);

// purity: what a pure folder's files load at run time (type imports are erased)
for (const [from] of graph) {
  if (!PURE.includes(folderOf(from))) continue;
  const seen = new Set<string>([from]);
  const path = new Map<string, string>([[from, rel(from)]]);
  const queue = [from];
  while (queue.length > 0) {
    const v = queue.shift() ?? "";
    for (const i of graph.get(v) ?? []) {
      if (i.typeOnly || seen.has(i.to)) continue;
      seen.add(i.to);
      path.set(i.to, `${path.get(v)} -> ${i.to.startsWith("node:") ? i.to : rel(i.to)}`);
      if (i.to.startsWith("node:")) problems.push(`${path.get(i.to)}: a pure module reaches node:`);
      else queue.push(i.to);
    }
  }
}

// web/: the browser code may import the pure layers (config, policy), the schema and itself, never `node:`
// (web/build.ts, the Node script that bundles it, is the exception); types only from anywhere in
// src/ (the API's wire formats: erased, they bring no code into the bundle)
const WEB = join(ROOT, "web");
const WEB_MAY_IMPORT = [WEB, join(SRC, "config"), join(SRC, "policy"), join(ROOT, "schema")];
const webFiles = (() => {
  try {
    return files(WEB).filter((f) => f !== join(WEB, "build.ts"));
  } catch {
    return [];
  }
})();
for (const from of webFiles) {
  for (const i of importsOf(from)) {
    if (i.to.startsWith("node:")) problems.push(`${rel(from)}: web may not import ${i.to}`);
    else if (i.typeOnly && i.to.startsWith(`${SRC}/`)) continue;
    else if (!WEB_MAY_IMPORT.some((dir) => i.to.startsWith(`${dir}/`)))
      problems.push(
        `${rel(from)}: web may import web/, src/config, src/policy and schema/ only (${rel(i.to)})`,
      );
  }
}

for (const p of [...new Set(problems)].sort()) console.error(p);
if (problems.length > 0) {
  console.error(`${new Set(problems).size} import problems (scripts/check-imports.ts)`);
  process.exit(1);
}
console.log(`imports: ${graph.size + webFiles.length} files, layers and cycles checked`);

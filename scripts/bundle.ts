// The installed build of the CLI and daemon: esbuild bundles src/ into build/dist/*.mjs, plain
// ESM that Node runs without stripping types. Entries: the CLI (cli-main.mjs) and every worker
// thread src/ starts with `new Worker(new URL("./x.ts", import.meta.url))`; the lazily imported
// commands become shared chunks beside them. npm packages stay external (the installed tree has
// the production node_modules: better-sqlite3 is a native addon).
//
// Every `new URL("REL", import.meta.url)` in src/ is rewritten to the same file as seen from
// build/dist/ (the installed tree mirrors the repository: build/bpf, build/web, data,
// native/build, package.json), and a worker's .ts to its bundled .mjs, so the bundle finds what
// the sources find.
import { build, type Plugin } from "esbuild";
import { readdirSync, readFileSync, rmSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { standaloneValidator } from "./standalone-validator.ts";

const ROOT = resolve(fileURLToPath(new URL("..", import.meta.url)));
const SRC = join(ROOT, "src");
const CLI = join(SRC, "cli/main.ts");
const URL_REF = /new URL\(\s*"([^"]+)",\s*import\.meta\.url\s*\)/g;
const WORKER_REF = /new Worker\(\s*new URL\(\s*"([^"]+)",\s*import\.meta\.url\s*\)/g;

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    if (e.isDirectory()) return sources(p);
    return e.name.endsWith(".ts") && !e.name.endsWith(".d.ts") ? [p] : [];
  });
}

/** The bundle's name of an entry: its path under src/, "/" as "-" (src/host/x.ts → host-x). */
export function entryName(file: string): string {
  return relative(SRC, file).replace(/\.ts$/, "").replaceAll("/", "-");
}

/** Every module src/ runs as a worker thread, by absolute path. */
export function workerEntries(): string[] {
  const found = new Set<string>();
  for (const file of sources(SRC))
    for (const m of readFileSync(file, "utf8").matchAll(WORKER_REF))
      found.add(resolve(dirname(file), m[1]!));
  return [...found].sort();
}

function urlRewrite(outdir: string, workers: Set<string>): Plugin {
  return {
    name: "moat-urls",
    setup(b) {
      b.onLoad({ filter: /\.ts$/ }, (args) => {
        if (!args.path.startsWith(SRC + "/")) return undefined;
        const text = readFileSync(args.path, "utf8");
        const contents = text.replace(URL_REF, (_all, ref: string) => {
          const target = resolve(dirname(args.path), ref);
          const file = workers.has(target) ? join(outdir, `${entryName(target)}.mjs`) : target;
          const rel = relative(outdir, file) + (ref.endsWith("/") ? "/" : "");
          return `new URL(${JSON.stringify(rel.startsWith(".") ? rel : `./${rel}`)}, import.meta.url)`;
        });
        return { contents, loader: "ts" };
      });
    },
  };
}

export async function bundle(outdir = join(ROOT, "build/dist")): Promise<void> {
  const workers = workerEntries();
  rmSync(outdir, { recursive: true, force: true });
  await build({
    entryPoints: [CLI, ...workers].map((file) => ({ in: file, out: entryName(file) })),
    outdir,
    outExtension: { ".js": ".mjs" },
    chunkNames: "chunk-[hash]",
    bundle: true,
    splitting: true,
    format: "esm",
    platform: "node",
    target: "node24",
    packages: "external",
    // stack traces name moat's functions and classes
    keepNames: true,
    legalComments: "none",
    logLevel: "warning",
    // the schema's validator as code made here: each start of a worker thread (the policy's)
    // would compile the schema again
    plugins: [standaloneValidator(SRC), urlRewrite(outdir, new Set(workers))],
  });
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  await bundle(process.argv[2] ? resolve(process.argv[2]) : undefined);
}

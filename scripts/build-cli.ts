// The CLI's bundle (`make build`): plain JavaScript in build/cli/, so a command starts without
// resolving hundreds of files or stripping TypeScript types. One file for the entry point
// (main.mjs: argument parsing, help) and one a command (commands/NAME.mjs, loaded only when that
// command runs), each with just the code and packages it uses, except the daemon's (`run`),
// loaded from src/; src/cli/command.ts is its own file
// (command.mjs) that all of them import, so its error classes are one class each. bin/moat and
// the installed launcher run it when it is there and newer than src/, but `moat run` from src/.
import { build, type Plugin } from "esbuild";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { standaloneValidator } from "./standalone-validator.ts";

const ROOT = resolve(fileURLToPath(new URL("..", import.meta.url)));
const SRC = join(ROOT, "src");
const OUT = join(ROOT, "build/cli");
const COMMAND_TS = join(SRC, "cli/command.ts");
const INDEX_TS = join(SRC, "cli/commands/index.ts");

/**
 * The command modules index.ts loads lazily (`import("./check.ts")`), but the daemon's: `run`
 * starts worker threads from its source files, so the bundle loads it from src/.
 */
const FROM_SOURCE = new Set(["run"]);
/** The names of the command modules `file` (in src/cli/commands/) imports lazily. */
const lazyImports = (file: string): string[] =>
  [...readFileSync(file, "utf8").matchAll(/import\("\.\/([a-z0-9-]+)\.ts"\)/g)]
    .map((m) => m[1] ?? "")
    .filter((name) => name && !FROM_SOURCE.has(name));
/**
 * Every command, and the parts of a command it loads only for one of its actions (`fleet put`'s
 * policy checker is not read for `fleet status`): each a file of its own.
 */
const COMMANDS = [
  ...new Set(
    lazyImports(INDEX_TS).flatMap((name) => [
      name,
      ...lazyImports(join(SRC, "cli/commands", `${name}.ts`)),
    ]),
  ),
];

/**
 * For the bundle of `entry` (written to `outFile`): command.ts and the command modules (and their
 * parts) that src/cli/commands/ imports lazily stay separate files (imported by their path relative to `outFile`); moat's own modules
 * are pure to import, so each bundle leaves out what it does not use even when a face
 * (index.ts) re-exports it (the modules imported for their effect excepted).
 */
function linking(entry: string, outFile: string): Plugin {
  // imported for their effect: converters registered, the file-identity reader registered, the
  // NATS client's transport mended
  const EFFECTFUL =
    /[\\/]src[\\/](datapath[\\/](map-converters|open-files)|fleet[\\/]nats-transport)\.ts$/;
  const fromOut = (target: string) => {
    const rel = relative(dirname(outFile), target);
    return rel.startsWith(".") ? rel : `./${rel}`;
  };
  return {
    name: "moat-cli-linking",
    setup(b) {
      // files found next to a module (data/, the addon) are found from where its source is
      b.onLoad({ filter: /[\\/]src[\\/].*\.ts$/ }, (args) => {
        const text = readFileSync(args.path, "utf8");
        if (!text.includes("import.meta.url")) return undefined;
        const here = JSON.stringify(relative(dirname(outFile), args.path));
        return {
          contents: text.replaceAll("import.meta.url", `new URL(${here}, import.meta.url).href`),
          loader: "ts",
        };
      });
      b.onResolve({ filter: /^\.\.?\// }, (args) => {
        const path = resolve(args.resolveDir, args.path);
        if (!path.startsWith(SRC) || !path.endsWith(".ts")) return undefined;
        if (path === COMMAND_TS && entry !== COMMAND_TS)
          return { path: fromOut(join(OUT, "command.mjs")), external: true };
        // a command module, or a part of one, that src/cli/commands/ loads lazily
        const commands = dirname(INDEX_TS);
        if (
          args.kind === "dynamic-import" &&
          dirname(args.importer) === commands &&
          dirname(path) === commands
        ) {
          const name = args.path.replace(/^\.\/|\.ts$/g, "");
          const target = FROM_SOURCE.has(name) ? path : join(OUT, "commands", `${name}.mjs`);
          return { path: fromOut(target), external: true };
        }
        return EFFECTFUL.test(path) ? undefined : { path, sideEffects: false };
      });
    },
  };
}

async function bundle(entry: string, outFile: string): Promise<number> {
  const result = await build({
    entryPoints: [entry],
    outfile: outFile,
    bundle: true,
    format: "esm",
    platform: "node",
    target: "node24",
    // native code stays a package, resolved from node_modules at run time
    external: ["better-sqlite3", "*.node"],
    // CommonJS packages bundled into ESM call require() for node: built-ins
    banner: {
      js: 'import { createRequire as __moatRequire } from "node:module"; const require = __moatRequire(import.meta.url);',
    },
    legalComments: "none",
    // the validator's onLoad first: it replaces its module whole
    plugins: [standaloneValidator(SRC), linking(entry, outFile)],
    metafile: true,
    logLevel: "warning",
  });
  return Object.values(result.metafile.outputs).reduce((n, o) => n + o.bytes, 0);
}

rmSync(OUT, { recursive: true, force: true });
mkdirSync(join(OUT, "commands"), { recursive: true });
const sizes: string[] = [];
const jobs: [string, string][] = [
  [join(SRC, "cli/main.ts"), join(OUT, "main.mjs")],
  [COMMAND_TS, join(OUT, "command.mjs")],
  ...COMMANDS.map((c): [string, string] => [
    join(SRC, "cli/commands", `${c}.ts`),
    join(OUT, "commands", `${c}.mjs`),
  ]),
];
for (const [entry, out] of jobs) {
  const bytes = await bundle(entry, out);
  sizes.push(`${relative(OUT, out)} ${(bytes / 1024).toFixed(0)} KiB`);
}
// what bin/moat compares with src/ to tell a stale bundle
writeFileSync(join(OUT, "BUILT"), `${new Date().toISOString()}\n`);
console.log(`cli bundle in build/cli: ${sizes.join(", ")}`);

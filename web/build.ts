// The web console's one build: each entry is bundled by esbuild into build/web/NAME.js, a classic
// script (no modules, no workers) that also runs from file://, beside its NAME.html. The policy
// schema, the example policies and their set files are inlined; nothing is fetched at run time.
import { build, type Plugin } from "esbuild";
import { standaloneValidator } from "../scripts/standalone-validator.ts";
import { copyFileSync, mkdirSync, readdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = resolve(fileURLToPath(new URL("..", import.meta.url)));

export interface WebEntry {
  name: string;
  entry: string;
  html: string;
  css?: string;
}

export const ENTRIES: WebEntry[] = [
  {
    name: "playground",
    entry: "web/playground/main.ts",
    html: "web/playground/index.html",
    css: "web/playground/playground.css",
  },
  {
    name: "live",
    entry: "web/live/main.ts",
    html: "web/live/index.html",
    css: "web/live/live.css",
  },
  { name: "login", entry: "web/live/login.ts", html: "web/live/login.html" },
];

/** The texts of examples/ (policies and the set files they name) and the shipped DoH list. */
const examplesPlugin: Plugin = {
  name: "moat-examples",
  setup(b) {
    b.onResolve({ filter: /^moat:examples$/ }, () => ({ path: "examples", namespace: "moat" }));
    b.onLoad({ filter: /.*/, namespace: "moat" }, () => {
      const dir = join(ROOT, "examples");
      const files: Record<string, string> = {};
      for (const name of readdirSync(dir).sort())
        files[name] = readFileSync(join(dir, name), "utf8");
      const doh = readFileSync(join(ROOT, "data/doh-resolvers.txt"), "utf8");
      return {
        contents: `export const EXAMPLE_FILES = ${JSON.stringify(files)};\nexport const DOH_RESOLVERS = ${JSON.stringify(doh)};`,
        loader: "js",
      };
    });
  },
};

/**
 * codemirror-json-schema renders hover docs as markdown through shiki, whose grammars and themes
 * are loaded on demand (separate chunks a classic script cannot have): the playground shows the
 * schema's descriptions as plain text instead.
 */
const plainDocsPlugin: Plugin = {
  name: "plain-docs",
  setup(b) {
    b.onResolve({ filter: /utils\/markdown(\.js)?$/ }, (args) =>
      args.importer.includes("codemirror-json-schema")
        ? { path: join(ROOT, "web/playground/plain-docs.ts") }
        : undefined,
    );
  },
};

export async function buildWeb(outdir = join(ROOT, "build/web")): Promise<void> {
  mkdirSync(outdir, { recursive: true });
  for (const e of ENTRIES) {
    await build({
      entryPoints: [join(ROOT, e.entry)],
      outfile: join(outdir, `${e.name}.js`),
      bundle: true,
      format: "iife",
      platform: "browser",
      target: "es2022",
      minify: true,
      legalComments: "none",
      logLevel: "warning",
      plugins: [examplesPlugin, plainDocsPlugin, standaloneValidator(join(ROOT, "src"))],
    });
    copyFileSync(join(ROOT, e.html), join(outdir, `${e.name}.html`));
    if (e.css) copyFileSync(join(ROOT, e.css), join(outdir, `${e.name}.css`));
  }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  await buildWeb(process.argv[2] ? resolve(process.argv[2]) : undefined);
}

// The web console's one build: each entry is bundled by esbuild into build/web/NAME.js, a classic
// script (no modules, no workers) that also runs from file://, beside its NAME.html. The policy
// schema, the example policies and their set files are inlined; nothing is fetched at run time.
import { build, type Plugin } from "esbuild";
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
 * moat's loader validates policies with ajv, which compiles the schema into a function at run
 * time; the console's pages (served with a CSP without 'unsafe-eval') may not. The bundle gets
 * the same schema compiled by the same ajv settings at build time (ajv's standalone code), and
 * the loader's `new Ajv(...).compile(...)` returns it.
 */
const precompiledSchemaPlugin: Plugin = {
  name: "precompiled-schema",
  setup(b) {
    b.onResolve({ filter: /^ajv$/ }, (args) =>
      args.importer.endsWith(join("src", "config", "schema-check.ts"))
        ? { path: "ajv", namespace: "moat-ajv" }
        : undefined,
    );
    b.onResolve({ filter: /^moat:policy-validator$/ }, () => ({
      path: "policy-validator",
      namespace: "moat-ajv",
    }));
    b.onLoad({ filter: /^ajv$/, namespace: "moat-ajv" }, () => ({
      contents: `import validate from "moat:policy-validator";
export class Ajv { addKeyword() {} compile() { return validate; } }`,
      loader: "js",
      resolveDir: ROOT,
    }));
    b.onLoad({ filter: /^policy-validator$/, namespace: "moat-ajv" }, async () => {
      const { policyAjv } = await import("../src/config/schema-check.ts");
      const { PolicySchema } = await import("../src/config/schema.ts");
      // a CommonJS module: Node's import gives its exports (the function) as `default`
      type Standalone = (ajv: unknown, validate: unknown) => string;
      const loaded = (await import("ajv/dist/standalone/index.js")) as unknown as {
        default: Standalone | { default: Standalone };
      };
      const standalone =
        typeof loaded.default === "function" ? loaded.default : loaded.default.default;
      const ajv = policyAjv({ source: true, esm: true });
      return {
        contents: standalone(ajv, ajv.compile(PolicySchema)),
        loader: "js",
        resolveDir: ROOT,
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
      plugins: [examplesPlugin, plainDocsPlugin, precompiledSchemaPlugin],
    });
    copyFileSync(join(ROOT, e.html), join(outdir, `${e.name}.html`));
    if (e.css) copyFileSync(join(ROOT, e.css), join(outdir, `${e.name}.css`));
  }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  await buildWeb(process.argv[2] ? resolve(process.argv[2]) : undefined);
}

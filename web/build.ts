// Bundles the web console's pages into build/web/: each entry's script (esbuild, one classic
// script per page) and its HTML, copied beside it. Run by `make web`.
import { build } from "esbuild";
import { copyFileSync, mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
export const OUT = join(ROOT, "build", "web");

export interface WebEntry {
  name: string;
  entry: string;
  html: string;
  css?: string;
}

export const ENTRIES: WebEntry[] = [
  {
    name: "live",
    entry: "web/live/main.ts",
    html: "web/live/index.html",
    css: "web/live/live.css",
  },
  { name: "login", entry: "web/live/login.ts", html: "web/live/login.html" },
];

export async function buildWeb(): Promise<void> {
  mkdirSync(OUT, { recursive: true });
  for (const e of ENTRIES) {
    await build({
      entryPoints: [join(ROOT, e.entry)],
      bundle: true,
      format: "iife",
      target: "es2022",
      minify: true,
      outfile: join(OUT, `${e.name}.js`),
      logLevel: "warning",
    });
    copyFileSync(join(ROOT, e.html), join(OUT, `${e.name}.html`));
    if (e.css) copyFileSync(join(ROOT, e.css), join(OUT, `${e.name}.css`));
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await buildWeb();

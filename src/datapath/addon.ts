import { createRequire } from "node:module";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { NativeError } from "./errors.ts";
import type { NativeAddon } from "./native.d.ts";

const require = createRequire(import.meta.url);
const root = fileURLToPath(new URL("../../", import.meta.url));

/** Where the addon may be, in order; all are reported when none loads. */
const candidates = [
  `${root}native/build/Release/moat_native.node`,
  `${root}native/build/Debug/moat_native.node`,
];

let addon: NativeAddon | undefined;

/** Loads the addon once; a failure names every path tried and how to build it. */
export function native(): NativeAddon {
  if (addon) return addon;
  const tried: string[] = [];
  for (const path of candidates) {
    if (!existsSync(path)) {
      tried.push(`${path} (missing)`);
      continue;
    }
    try {
      const loaded = require(path) as NativeAddon;
      loaded.setErrorClass(NativeError);
      addon = loaded;
      return loaded;
    } catch (err) {
      tried.push(`${path} (${(err as Error).message})`);
    }
  }
  throw new Error(
    `moat's native addon could not be loaded; run 'make build'. Tried:\n  ${tried.join("\n  ")}`,
  );
}

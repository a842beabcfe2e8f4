// Writes moat's man pages and shell completion, generated from the commands' own definitions
// (src/cli/reference), into build/man and build/completion (`make build`; `make install`
// installs them). Usage: gen-cli-reference.ts [OUT_DIR] (default build).
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { commands } from "../src/cli/commands/index.ts";
import { VERSION } from "../src/cli/version.ts";
import { commandPage, mainPage } from "../src/cli/reference/man.ts";
import { bashCompletion, zshCompletion } from "../src/cli/reference/completion.ts";

const out = process.argv[2] ?? "build";
const loaded = await Promise.all(commands.map((c) => c.load()));
mkdirSync(join(out, "man"), { recursive: true });
mkdirSync(join(out, "completion"), { recursive: true });
for (const page of [mainPage(loaded, VERSION), ...loaded.map((c) => commandPage(c, VERSION))])
  writeFileSync(join(out, "man", page.file), page.text);
writeFileSync(join(out, "completion", "moat.bash"), bashCompletion(loaded));
writeFileSync(join(out, "completion", "_moat"), zshCompletion(loaded));
console.log(`cli reference: ${loaded.length + 1} man pages, bash and zsh completion in ${out}`);

// Prints "LOADED URL" on stderr for every module loaded from a file (--import this file).
import { registerHooks } from "node:module";

registerHooks({
  load(url, context, nextLoad) {
    if (url.startsWith("file:")) process.stderr.write(`LOADED ${url}\n`);
    return nextLoad(url, context);
  },
});

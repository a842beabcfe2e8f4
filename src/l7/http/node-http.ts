// Node's http module, required rather than imported: an ES import of node:http builds its module
// facade, which reads every export, the WebSocket getters among them, and so loads Node's fetch
// (undici, ~50 ms of CPU) at every daemon start, which never uses it. src/api/server.ts does the
// same.
import { createRequire } from "node:module";
import type * as Http from "node:http";

export const http = createRequire(import.meta.url)("node:http") as typeof Http;

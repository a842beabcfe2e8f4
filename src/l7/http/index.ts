// HTTP/1.x and h2c through moat's relay: each request judged by layer7.http, refused with 403 or
// re-sent upstream (docs/l7-http.md).
export { httpHandler } from "./handler.ts";
export { DEFAULT_LIMITS, type HttpLimits } from "./limits.ts";

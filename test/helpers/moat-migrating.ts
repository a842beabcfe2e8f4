// `moat` as bin/moat runs it, with the test fixture's conntrack converter registered
// (ct-layout-fixture.ts): the daemon a migration test restarts.
import { registerOldCtConverter } from "./ct-layout-fixture.ts";

registerOldCtConverter();
await import("../../src/cli/main.ts");

// The daemon's API with a test control and the real event pipeline, listening on a unix socket
// in a directory of its own; all of it closed and removed when the test ends.
import type { TestContext } from "node:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startApi } from "../../src/api/server.ts";
import { EventPipeline } from "../../src/observe/pipeline.ts";
import { testControl } from "./api-control.ts";

/** The API's socket path; its directory is named `prefix` and a random suffix. */
export async function apiOnSocket(t: TestContext, prefix: string): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const pipeline = new EventPipeline();
  const socketPath = join(dir, "api.sock");
  const api = await startApi(testControl(pipeline), [{ listen: `unix:${socketPath}` }]);
  t.after(async () => {
    await api.close();
    await pipeline.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return socketPath;
}

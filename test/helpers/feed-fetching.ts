// The daemon's feed fetcher in the test's own process, against a local HTTP server: a set store
// of its own, the server, the running policy's feed set `ioc`, and what the fetcher re-applied
// and logged.
import type { TestContext } from "node:test";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { AddressInfo } from "node:net";
import { startFeeds } from "../../src/daemon/feed-fetch.ts";
import type { PolicyModel } from "../../src/config/index.ts";
import type { Notice } from "../../src/observe/notice.ts";
import { feedSet, setsModel } from "./set-models.ts";

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

/** A set store of its own and a local HTTP server answering with `handle`: its base URL. */
export async function feedServer(
  t: TestContext,
  handle: Handler,
): Promise<{ dir: string; base: string }> {
  const dir = mkdtempSync(join(tmpdir(), "moat-fetch-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const server = createServer(handle);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  t.after(() => server.close());
  return { dir, base: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

/**
 * The daemon's feeds of `model`: each re-apply's reason (or `refresh`), each log line and each
 * notice kept.
 */
export function watchFeeds(
  t: TestContext,
  dir: string,
  model: () => PolicyModel,
  refresh?: (reason: string) => Promise<void>,
) {
  const refreshes: string[] = [];
  const logs: string[] = [];
  const notices: Notice[] = [];
  const feeds = startFeeds({
    dir,
    model,
    refresh:
      refresh ??
      ((reason) => {
        refreshes.push(reason);
        return Promise.resolve();
      }),
    log: (line) => logs.push(line),
    notice: (n) => notices.push(n),
  });
  t.after(() => feeds.close());
  return { feeds, refreshes, logs, notices };
}

/** A feed set `ioc` at `url` (by default every second, 1000 bytes at most), as the policy names it. */
export function feedModel(
  url: string,
  o: { maxBytes?: number; intervalSeconds?: number } = {},
): PolicyModel {
  const { maxBytes = 1000, intervalSeconds = 1 } = o;
  return setsModel([feedSet("ioc", { url, intervalSeconds, maxBytes })]);
}

// The API's unix socket is made only in a directory no one but root can change: its owner could
// rename the socket and listen in its place (root's CLI would then send its policies and tokens
// to another user's process). The socket is born 0600.
import { test } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, chownSync, mkdirSync, statSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { listen } from "../../src/api/listen.ts";
import { scratchDir } from "../helpers/scratch-dir.ts";

const NOBODY = 65534;

/** Binds the socket at `path`; `during` runs while it listens. */
async function bind(path: string, during: () => void = () => {}): Promise<void> {
  const server = createServer();
  try {
    await listen(server, { kind: "unix", path });
    during();
  } finally {
    server.close();
  }
}

test("the API socket is refused in a directory another user owns or can write", async (t) => {
  const base = scratchDir(t, "apisock");
  const own = join(base, "user");
  mkdirSync(own, { mode: 0o755 });
  chownSync(own, NOBODY, NOBODY);
  await assert.rejects(bind(join(own, "api.sock")), /API socket directory .*owned by uid 65534/);
  const group = join(base, "group");
  mkdirSync(group);
  chmodSync(group, 0o775);
  await assert.rejects(bind(join(group, "api.sock")), /writable by group or others/);
  const shared = join(base, "shared");
  mkdirSync(shared);
  chmodSync(shared, 0o1777);
  await assert.rejects(bind(join(shared, "api.sock")), /writable by group or others/);
});

test("the API socket's directory is made 0700 and the socket 0600", async (t) => {
  const path = join(scratchDir(t, "apisock"), "run", "moat", "api.sock");
  const umask = process.umask(0);
  try {
    await bind(path, () => assert.equal(statSync(path).mode & 0o777, 0o600));
  } finally {
    process.umask(umask);
  }
  assert.equal(statSync(join(path, "..")).mode & 0o7777, 0o700);
});

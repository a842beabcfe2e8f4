// Which processes count as daemons using a pin directory: root's `moat run` command lines only. A
// user's process can carry a command line that looks like moat's; it must neither keep a daemon
// from starting nor keep `moat cleanup` from cleaning.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { daemonsPinning, PIN_ROOT } from "../../src/datapath/index.ts";

const lookAlike = (uid?: number) =>
  spawn(
    "/usr/bin/python3",
    ["-c", "import time; time.sleep(30)", "/opt/x/src/cli/main.ts", "run"],
    { stdio: "ignore", ...(uid === undefined ? {} : { uid, gid: uid }) },
  );

test("a moat-like command line counts as a pinning daemon only when root runs it", async (t) => {
  const user = lookAlike(65534);
  const root = lookAlike();
  t.after(() => {
    user.kill();
    root.kill();
  });
  // the command line is there once python has started
  const deadline = Date.now() + 10_000;
  while (!daemonsPinning(PIN_ROOT).includes(root.pid!) && Date.now() < deadline)
    await new Promise((r) => setTimeout(r, 50));
  const found = daemonsPinning(PIN_ROOT);
  assert.ok(found.includes(root.pid!), "root's look-alike is taken for a daemon");
  assert.ok(!found.includes(user.pid!), "a user's look-alike is not");
});

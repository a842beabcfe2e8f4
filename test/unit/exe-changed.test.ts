// A changed executable is an event of its own: the first content seen for a path is its baseline;
// a new content (a package upgrade, a replaced binary) is one `exe_changed` event with the path,
// the old and new sha256 and the identity, once per change however many connections follow; a
// process still running the content before (an old daemon not restarted yet) raises nothing; what
// was seen survives a restart through the state file.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import {
  mkdirSync,
  mkdtempSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ExeLedger, ExeWatch, MAX_EXE_PATHS } from "../../src/observe/executables/index.ts";
import { formatEventLine, type MoatEvent } from "../../src/datapath/event.ts";
import type { FlowConnection } from "../../src/observe/flows/record.ts";

const sha = (text: string) => createHash("sha256").update(text).digest("hex");

function connection(pid: number, path: string): FlowConnection {
  return {
    mode: "detect",
    rule: "default",
    direction: "egress",
    protocol: "tcp",
    local: { ip: "10.0.0.1", port: 40000 },
    remote: { ip: "192.0.2.7", port: 443 },
    interface: "eth0",
    process: { pid, name: "tool", path, user: 1000, cgroup: "/user.slice", container: null },
    verdict: "detected",
    hook: "connect",
    generation: 1,
  };
}

/** Replaces `path` the way a package manager does: a new file renamed over it. */
function replace(path: string, text: string): void {
  writeFileSync(`${path}.new`, text, { mode: 0o755 });
  renameSync(`${path}.new`, path);
}

test("the ledger: a first sight is a baseline, a new content one change, an older one none", () => {
  const ledger = new ExeLedger();
  assert.equal(ledger.seen("/usr/bin/tool", "a", 1), null);
  assert.equal(ledger.seen("/usr/bin/tool", "a", 2), null);
  assert.equal(ledger.seen("/usr/bin/tool", "b", 3), "a");
  assert.equal(ledger.seen("/usr/bin/tool", "b", 4), null);
  // a process started before the upgrade still runs "a"
  assert.equal(ledger.seen("/usr/bin/tool", "a", 5), null);
  assert.equal(ledger.seen("/usr/bin/tool", "c", 6), "b");
  assert.equal(ledger.seen("/usr/bin/other", "c", 7), null, "another path has its own baseline");
});

test("the ledger keeps at most MAX_EXE_PATHS paths, the least recently seen going first", () => {
  const ledger = new ExeLedger();
  for (let i = 0; i <= MAX_EXE_PATHS; i++) ledger.seen(`/bin/p${i}`, "h", i);
  assert.equal(ledger.paths.size, MAX_EXE_PATHS);
  assert.equal(ledger.forgotten, 1);
  assert.equal(ledger.paths.has("/bin/p0"), false);
});

test("a replaced binary is one exe_changed event, kept across a restart", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "moat-exe-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const procRoot = join(dir, "proc");
  mkdirSync(procRoot);
  const tool = join(dir, "tool");
  writeFileSync(tool, "version 1", { mode: 0o755 });
  const statePath = join(dir, "executables.json");
  const events: MoatEvent[] = [];
  const start = () =>
    new ExeWatch({
      statePath,
      procRoot,
      mode: () => "detect",
      push: (e) => events.push(e),
      log: (line) => assert.fail(line),
    });
  let watch = start();
  // pids without a /proc entry: the file at the path is read
  watch.seen(connection(101, tool), Date.parse("2026-12-03T10:00:00Z"));
  await watch.idle();
  assert.equal(events.length, 0, "the first content seen is the baseline");

  replace(tool, "version 2");
  for (const pid of [102, 103, 104])
    watch.seen(connection(pid, tool), Date.parse("2026-12-03T10:01:00Z"));
  await watch.idle();
  assert.equal(events.length, 1, "one event for the change, not one per connection");
  const ev = events[0];
  assert.equal(ev?.type, "exe_changed");
  assert.equal(ev?.reason, "exe_changed");
  assert.equal(ev?.rule, "exe_changed");
  assert.equal(ev?.time, "2026-12-03T10:01:00.000Z");
  assert.equal(ev?.process?.path, tool);
  assert.deepEqual(ev?.executable, {
    path: tool,
    oldHash: sha("version 1"),
    newHash: sha("version 2"),
    identity: { exe: tool, user: 1000, cgroup: "/user.slice", container: "" },
  });
  assert.equal(
    formatEventLine(ev as MoatEvent),
    `2026-12-03T10:01:00.000Z EXE_CHANGED ${tool} sha256 ${sha("version 1")} -> ${sha("version 2")} (tool pid 102, user 1000, cgroup /user.slice)`,
  );

  // a process still running the first version (its /proc/PID/exe is the old file)
  const old = join(dir, "tool.old");
  writeFileSync(old, "version 1");
  mkdirSync(join(procRoot, "77"));
  symlinkSync(old, join(procRoot, "77", "exe"));
  watch.seen(connection(77, tool), Date.now());
  await watch.idle();
  assert.equal(events.length, 1, "the content before raises nothing");

  watch.close();
  assert.equal(statSync(statePath).mode & 0o777, 0o600);
  events.length = 0;
  watch = start();
  watch.seen(connection(105, tool), Date.now());
  await watch.idle();
  assert.equal(events.length, 0, "after a restart, the same content is known");
  replace(tool, "version 3");
  watch.seen(connection(106, tool), Date.now());
  await watch.idle();
  assert.equal(events.length, 1);
  assert.equal(events[0]?.executable?.oldHash, sha("version 2"));
  assert.equal(events[0]?.executable?.newHash, sha("version 3"));
  watch.close();
});

test("a connection without an executable path is not looked at", async () => {
  const events: MoatEvent[] = [];
  const watch = new ExeWatch({
    statePath: null,
    mode: () => "detect",
    push: (e) => events.push(e),
    log: () => {},
  });
  watch.seen({ ...connection(1, ""), process: null }, Date.now());
  watch.seen(connection(1, ""), Date.now());
  await watch.idle();
  assert.equal(events.length, 0);
  watch.close();
});

test("the same path in two containers is two files: each its own baseline, no change", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "moat-exe-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const procRoot = join(dir, "proc");
  const events: MoatEvent[] = [];
  const watch = new ExeWatch({
    statePath: null,
    procRoot,
    mode: () => "detect",
    push: (e) => events.push(e),
    log: () => {},
  });
  for (const [pid, name, content] of [
    [11, "web", "python 3.11"],
    [12, "worker", "python 3.12"],
  ] as const) {
    writeFileSync(join(dir, name), content);
    mkdirSync(join(procRoot, String(pid)), { recursive: true });
    symlinkSync(join(dir, name), join(procRoot, String(pid), "exe"));
    const c = connection(pid, "/usr/bin/python3");
    const p = c.process;
    assert.ok(p);
    watch.seen(
      { ...c, process: { ...p, container: { id: `${name}-id`, name, image: "img" } } },
      Date.now(),
    );
    await watch.idle();
  }
  assert.deepEqual(events, []);
  watch.close();
});

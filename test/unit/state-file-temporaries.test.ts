// The files the daemon replaces whole by rename (the policy file after an apply, dynamic sets, URL
// feeds, the executables' and the anomaly engine's state): the temporary copy is made under a
// random name with O_EXCL|O_NOFOLLOW, so a symlink another user planted at a predictable
// temporary name (the pid-named ones moat used to write) never makes root write through it.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  chmodSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { writePolicyFile } from "../../src/daemon/policy-text.ts";
import { dynamicSets } from "../../src/daemon/dynamic-sets.ts";
import { startFeeds } from "../../src/daemon/feed-fetch.ts";
import { ExeLedger } from "../../src/observe/executables/exe-ledger.ts";
import { saveExeState } from "../../src/observe/executables/state-file.ts";
import { AnomalyDetector } from "../../src/observe/anomaly/detector.ts";
import { DEFAULT_ANOMALY_SETTINGS } from "../../src/observe/anomaly/types.ts";
import {
  saveAnomalyState,
  saveAnomalyStateInSlices,
} from "../../src/observe/anomaly/state-file.ts";
import type { PolicyModel } from "../../src/config/index.ts";
import { scratchDir, victim, VICTIM_TEXT } from "../helpers/scratch-dir.ts";

/** Symlinks to `target` at every temporary name moat used to write `path` through. */
function plant(path: string, target: string): void {
  const i = path.lastIndexOf("/");
  const [dir, file] = [path.slice(0, i), path.slice(i + 1)];
  for (const name of [
    `${file}.tmp`,
    `${file}.slices.tmp`,
    `${file}.${process.pid}.tmp`,
    `.${file}.${process.pid}.tmp`,
    `.${file}.moat-${process.pid}.tmp`,
  ])
    symlinkSync(target, join(dir, name));
}

/** The file was written (a regular file, not a planted link renamed into place), the target not. */
function assertSafe(path: string, target: string, mode = 0o600): void {
  assert.equal(readFileSync(target, "utf8"), VICTIM_TEXT, "written through a planted symlink");
  const st = lstatSync(path);
  assert.ok(st.isFile(), `${path} is not a regular file`);
  assert.equal(st.mode & 0o777, mode);
  const dir = path.slice(0, path.lastIndexOf("/"));
  // only the planted links stay beside it: no temporary file is left behind
  const left = readdirSync(dir).filter(
    (n) => n.endsWith(".tmp") && !lstatSync(join(dir, n)).isSymbolicLink(),
  );
  assert.deepEqual(left, []);
}

test("saving the policy file never writes through a planted temporary file, and keeps its mode", (t) => {
  const base = scratchDir(t, "tmpnames");
  const target = victim(base);
  const path = join(base, "policy.yaml");
  writeFileSync(path, "version: 1\nmode: detect\n", { mode: 0o644 });
  chmodSync(path, 0o644);
  plant(path, target);
  writePolicyFile(path, "version: 1\nmode: prevent\n");
  assertSafe(path, target, 0o644);
  assert.equal(readFileSync(path, "utf8"), "version: 1\nmode: prevent\n");
  // a new file is 0600
  const fresh = join(base, "new.yaml");
  plant(fresh, target);
  writePolicyFile(fresh, "version: 1\n");
  assertSafe(fresh, target);
});

const pos = { file: "p", line: 1, col: 1, path: "sets" };

test("a dynamic set's file is never written through a planted temporary file", async (t) => {
  const base = scratchDir(t, "tmpnames");
  const target = victim(base);
  const dir = join(base, "sets");
  mkdirSync(dir, { mode: 0o700 });
  plant(join(dir, "banned.dynamic"), target);
  const model = {
    sets: new Map([
      ["banned", { name: "banned", kind: "empty", entries: [], pos, origin: { kind: "dynamic" } }],
    ]),
  } as unknown as PolicyModel;
  const sets = dynamicSets({
    dir,
    model: () => model,
    refresh: () => Promise.resolve(),
    generation: () => 1,
    audit: () => {},
    log: () => {},
  });
  t.after(() => sets.close());
  const r = await sets.change({ op: "add", set: "banned", entry: "203.0.113.9" }, "root");
  assert.equal(r.ok, true);
  assertSafe(join(dir, "banned.dynamic"), target);
  assert.match(readFileSync(join(dir, "banned.dynamic"), "utf8"), /203\.0\.113\.9/);
});

test("a fetched feed and its meta are never written through planted temporary files", async (t) => {
  const base = scratchDir(t, "tmpnames");
  const target = victim(base);
  const dir = join(base, "sets");
  mkdirSync(dir, { mode: 0o700 });
  plant(join(dir, "ioc.feed"), target);
  plant(join(dir, "ioc.feed-meta"), target);
  const server = createServer((_req, res) => res.end("203.0.113.9\n"));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  t.after(() => server.close());
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/feed.txt`;
  const model = {
    sets: new Map([
      [
        "ioc",
        {
          name: "ioc",
          kind: "empty",
          entries: [],
          pos,
          origin: { kind: "feed", url, intervalSeconds: 3600, maxBytes: 1000, format: "plain" },
        },
      ],
    ]),
  } as unknown as PolicyModel;
  let refreshed!: () => void;
  const done = new Promise<void>((resolve) => (refreshed = resolve));
  const feeds = startFeeds({
    dir,
    model: () => model,
    refresh: () => {
      refreshed();
      return Promise.resolve();
    },
    log: () => {},
  });
  t.after(() => feeds.close());
  feeds.applied();
  await done;
  assertSafe(join(dir, "ioc.feed"), target);
  assertSafe(join(dir, "ioc.feed-meta"), target);
  assert.equal(readFileSync(join(dir, "ioc.feed"), "utf8"), "203.0.113.9\n");
});

test("the executables' state is never written through a planted temporary file", (t) => {
  const base = scratchDir(t, "tmpnames");
  const target = victim(base);
  const path = join(base, "executables.json");
  plant(path, target);
  saveExeState(path, new ExeLedger());
  assertSafe(path, target);
});

test("the anomaly state (whole or in slices) is never written through a planted temporary file", async (t) => {
  const base = scratchDir(t, "tmpnames");
  const target = victim(base);
  const path = join(base, "anomaly.json");
  plant(path, target);
  const d = new AnomalyDetector(DEFAULT_ANOMALY_SETTINGS, () => {});
  saveAnomalyState(path, d);
  assertSafe(path, target);
  rmSync(path);
  await saveAnomalyStateInSlices(path, d);
  assertSafe(path, target);
  assert.equal((JSON.parse(readFileSync(path, "utf8")) as { version: number }).version, 1);
  // a stale save leaves nothing behind
  await saveAnomalyStateInSlices(path, d, () => true);
  assertSafe(path, target);
  assert.ok(statSync(path).isFile());
});

// A daemon whose history and audit log sit on a small tmpfs, scanned on a blocked port range: a
// history that could not open on the full disk opens once there is room (history queries say
// why until then), failing writes are logged once each with their reason and counted as events
// lost, and a history file deleted while the daemon runs is replaced by a new one at its path.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startMoatLab, type MoatLab } from "../helpers/moat-lab.ts";
import { MOAT } from "../helpers/paths.ts";
import { until } from "../helpers/until.ts";

function moat(lab: MoatLab, ...args: string[]) {
  const r = spawnSync(MOAT, [...args, "--api", `unix:${lab.apiSocket}`], {
    encoding: "utf8",
    timeout: 20_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const SCANNED = Array.from({ length: 40 }, (_, i) => 9000 + i);
/** Scanned after the history file was deleted: ports of their own, so each is a new event. */
const LATER = [9100, 9101, 9102, 9103, 9104];

test("history and audit log on a disk that fills: reopened, failures logged and counted, a deleted file replaced", async (t) => {
  const disk = mkdtempSync(join(tmpdir(), `moat-history-full-${process.pid}-`));
  const mounted = spawnSync("mount", ["-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs", disk]);
  const started: MoatLab[] = [];
  // one hook, in order: the daemon (its files are open there) ends before the tmpfs goes
  t.after(async () => {
    for (const lab of started) await lab.close();
    if (mounted.status === 0) spawnSync("umount", [disk]);
    rmSync(disk, { recursive: true, force: true });
  });
  assert.equal(mounted.status, 0, "a tmpfs is mounted");
  const historyPath = join(disk, "history.db");
  const fill = join(disk, "fill");
  const running = await startMoatLab(
    t.name,
    (l) => `version: 1
mode: prevent
defaults: { ingress: block, egress: allow }
attach: { interfaces: [${l.ifB}] }
logging: { audit: { path: ${join(disk, "audit.log")} } }
`,
    undefined,
    {
      beforeDaemon: async () => {
        spawnSync("dd", ["if=/dev/zero", `of=${fill}`, "bs=4k"]);
        return ["--history", historyPath];
      },
    },
  );
  started.push(running);
  /** The daemon's output but for event lines. */
  const output = () => running.daemon.lines.filter((l) => !/ BLOCKED /.test(l)).join("\n");
  /** A line of the daemon's output, whenever it came. */
  const logged = (pattern: RegExp, ms = 20_000) =>
    until(
      `the daemon to say ${pattern}`,
      () => running.daemon.lines.find((l) => pattern.test(l)),
      ms,
    ).catch((err: Error) => {
      throw new Error(`${err.message}; it said:\n${output()}`);
    });

  await logged(
    /^warning: no event history: history \S+history\.db: database or disk is full; tried again in 5 s, then at most every 30 s$/,
  );
  const events = moat(running, "events");
  assert.notEqual(events.code, 0);
  assert.match(
    events.stderr,
    /the event history is not open: history \S+: database or disk is full/,
  );

  running.scan(SCANNED);
  await logged(/^warning: sink history: writes failing, events lost: .*database or disk is full$/);
  await logged(/^warning: sink audit: writes failing, events lost: .*audit\.log: ENOSPC/);
  const status = moat(running, "status");
  assert.match(
    status.stdout,
    /history 0 delivered, 0 dropped, \d+ events lost \(\d+ failed writes\)/,
  );
  const lost = Number(/history 0 delivered, 0 dropped, (\d+) events lost/.exec(status.stdout)?.[1]);
  assert.ok(lost >= SCANNED.length, `every scanned port's event is counted lost: ${lost}`);

  rmSync(fill);
  await logged(/^history \S+history\.db: open again, events are kept$/, 45_000);
  running.scan(SCANNED);
  await logged(/^sink history: writing again; \d+ events lost while its writes failed$/);
  const kept = await until("the scan in the history", () => {
    const r = moat(running, "events", "--json", "--limit", "1000");
    return r.code === 0 && r.stdout.trim().split("\n").length >= SCANNED.length ? r : undefined;
  });
  assert.match(kept.stdout, /"verdict":"blocked"/);

  rmSync(historyPath);
  await logged(/^warning: history \S+history\.db: the file was gone; a new one is open$/);
  assert.ok(existsSync(historyPath), "a new history file is at the path");
  running.scan(LATER);
  await running.restart("SIGTERM");
  const after = moat(running, "events", "--json", "--limit", "1000");
  assert.equal(after.code, 0, after.stderr);
  assert.notEqual(after.stdout.trim(), "", `the events after the deletion are kept: ${output()}`);
  const ports = after.stdout
    .trim()
    .split("\n")
    .map((l) => (JSON.parse(l) as { local: { port: number } }).local.port);
  assert.ok(ports.length >= 5, `the events after the deletion outlive a restart: ${after.stdout}`);
  assert.ok(
    ports.every((p) => LATER.includes(p)),
    `only what came after the deletion: ${ports.join(" ")}`,
  );
});

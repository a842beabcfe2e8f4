// An event's `path` is the executable the kernel saw make the connection, or "" when /proc no
// longer shows that file: a process that connects and then execs another program (or repoints
// /proc/self/exe with prctl(PR_SET_MM_MAP)) is not reported as that other program.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readlinkSync, realpathSync } from "node:fs";
import type { Readable } from "node:stream";
import { Attribution } from "../../src/attribution/index.ts";
import { decodeEvent } from "../../src/datapath/events.ts";
import type { MoatEvent } from "../../src/datapath/event.ts";
import { PathRuleLab } from "../helpers/path-rule-lab.ts";

const PORT = 8083;
let lab: PathRuleLab;

before(() => {
  lab = new PathRuleLab("evexe", PORT);
});

after(() => lab?.remove());

const attribution = new Attribution({
  roots: { docker: [], containerd: [], containersStorage: [], homes: () => [] },
});

/** Each event record, decoded now with the process as /proc shows it now. */
const decodeNow = (records: Buffer[]): MoatEvent[] =>
  records.map((r) =>
    decodeEvent(r, {
      rule: () => undefined,
      interfaceName: () => null,
      process: (owner) => attribution.attribute(owner),
      bootTimeMs: 0,
    }),
  );

/** Waits until /proc/PID/exe names `exe`. */
async function execd(pid: number, exe: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    try {
      if (readlinkSync(`/proc/${pid}/exe`) === exe) return;
    } catch {
      // not yet
    }
    await new Promise((r) => setTimeout(r, 25));
  }
  assert.fail(`pid ${pid} never ran ${exe}`);
}

/** The pid the child prints after its blocked connect(). */
function blockedPid(out: Readable): Promise<number> {
  let text = "";
  return new Promise((resolve, reject) => {
    out.setEncoding("utf8").on("data", (d: string) => {
      text += d;
      const pid = /blocked (\d+)\n/.exec(text)?.[1];
      if (pid) resolve(Number(pid));
    });
    out.on("end", () => reject(new Error(`no blocked connect: ${text}`)));
  });
}

test("an event read after its process exec'd another program does not name that program", async () => {
  // a path rule: the hooks record the caller's executable with every event
  lab.allowOnly(["/usr/bin/curl"]);
  const records: Buffer[] = [];
  const ring = lab.dp!.subscribe((r) => records.push(r));
  const python = realpathSync("/usr/bin/python3");
  // python's connect is blocked (EPERM); the same process then becomes sleep
  const child = spawn(
    "nsenter",
    lab.asNobody([
      python,
      "-c",
      `import os, socket
try:
    socket.socket().connect(("127.0.0.1", ${PORT}))
except PermissionError:
    print("blocked", os.getpid(), flush=True)
os.execv("/usr/bin/sleep", ["sleep", "10"])`,
    ]),
  );
  try {
    const pid = await blockedPid(child.stdout);
    await execd(pid, "/usr/bin/sleep");
    for (let i = 0; i < 40 && records.length === 0; i++) {
      ring.drain();
      await new Promise((r) => setTimeout(r, 25));
    }
    const ev = decodeNow(records).find((e) => e.process?.pid === pid);
    assert.ok(ev, `no event of pid ${pid}`);
    assert.equal(ev.verdict, "blocked");
    assert.match(
      ev.process?.name ?? "",
      /^python3/,
      "the kernel's comm: python made the connection",
    );
    assert.notEqual(ev.process?.path, "/usr/bin/sleep", "sleep never connected");
    assert.equal(ev.process?.path, "", "the file that connected is no longer the process's");
  } finally {
    child.kill();
  }
});

test("an event of a process still running what it exec'd names its path", async () => {
  lab.allowOnly(["/usr/bin/curl"]);
  const records: Buffer[] = [];
  const ring = lab.dp!.subscribe((r) => records.push(r));
  const python = realpathSync("/usr/bin/python3");
  const child = spawn(
    "nsenter",
    lab.asNobody([
      python,
      "-c",
      `import os, socket, time
try:
    socket.socket().connect(("127.0.0.1", ${PORT}))
except PermissionError:
    print("blocked", os.getpid(), flush=True)
time.sleep(10)`,
    ]),
  );
  try {
    const pid = await blockedPid(child.stdout);
    for (let i = 0; i < 40 && records.length === 0; i++) {
      ring.drain();
      await new Promise((r) => setTimeout(r, 25));
    }
    const ev = decodeNow(records).find((e) => e.process?.pid === pid);
    assert.ok(ev, `no event of pid ${pid}`);
    assert.equal(ev.process?.path, python);
  } finally {
    child.kill();
  }
});

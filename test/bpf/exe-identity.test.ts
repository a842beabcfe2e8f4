// A process's executable, as `path` rules judge it, is the one it exec'd (recorded at exec,
// inherited by fork children), not mm->exe_file, which an unprivileged user can repoint:
// unshare(CLONE_NEWUSER) gives the CAP_SYS_ADMIN prctl(PR_SET_MM_MAP) asks for.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { realpathSync, rmSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Datapath } from "../../src/datapath/datapath.ts";
import { PathRuleLab } from "../helpers/path-rule-lab.ts";

const SOURCE = fileURLToPath(new URL("../fixtures/exespoof/exespoof.c", import.meta.url));
const PORT = 8082;

let lab: PathRuleLab;
let spoof: string;

/** Applies a policy that blocks egress but to PORT, from the executable at `path`. */
const apply = (path: string) => lab.allowOnly([path]);

/** `cmd` as nobody, in the test's netns and cgroup. */
function run(cmd: string[]): string {
  const r = spawnSync("nsenter", lab.asNobody(cmd), { encoding: "utf8", timeout: 20_000 });
  return `${r.stdout}${r.stderr}`.trim();
}

/** exespoof's connect() result: -1 is EPERM (blocked), -111 ECONNREFUSED (let through). */
function spoofAs(target: string): { exe: string; connect: number } {
  return spoofResult(run([spoof, target, "127.0.0.1", String(PORT)]));
}

function spoofResult(out: string): { exe: string; connect: number } {
  const m = /prctl=(-?\d+) exe=(\S+) socket=\d+ connect=(-?\d+)/.exec(out);
  assert.ok(m, out);
  assert.equal(Number(m[1]), 0, `PR_SET_MM_MAP succeeded: ${out}`);
  return { exe: m[2]!, connect: Number(m[3]) };
}

const PIN_ROOT = `/sys/fs/bpf/moat-test-exeid-${process.pid}`;

/** curl's verdict: "blocked" (EPERM) or "passed" (refused: nothing listens). */
function curl(exe = "/usr/bin/curl"): string {
  const out = run(["sh", "-c", `${exe} -sSv --max-time 3 http://127.0.0.1:${PORT}/ 2>&1; true`]);
  if (/not permitted/i.test(out)) return "blocked";
  if (/refused/i.test(out)) return "passed";
  return out;
}

const connectPy = (body: string) => [
  "/usr/bin/python3",
  "-c",
  `import os, socket, threading
def attempt():
    try:
        socket.socket().connect(("127.0.0.1", ${PORT}))
        return "passed"
    except PermissionError:
        return "blocked"
    except OSError:
        return "passed"
${body}`,
];

before(() => {
  lab = new PathRuleLab("exeid", PORT);
  spoof = join(lab.work, "exespoof");
  execFileSync("gcc", ["-O1", "-static", "-o", spoof, SOURCE]);
});

after(() => {
  lab?.remove();
  rmSync(PIN_ROOT, { recursive: true, force: true });
});

test("exec tracking is attached with the socket hooks", () => {
  const hooks = lab.dp!.attachments.map((a) => a.hook);
  assert.ok(hooks.includes("sched_process_exec"), hooks.join(","));
  assert.ok(hooks.includes("sched_process_fork"), hooks.join(","));
});

test("path: an executable set with PR_SET_MM_MAP is not the one exec'd", () => {
  apply("/usr/bin/curl");
  const asCurl = spoofAs("/usr/bin/curl");
  assert.equal(asCurl.exe, "/usr/bin/curl", "the spoof took: /proc/self/exe names curl");
  // exespoof's fork child spoofs: its record, copied from its parent at fork, names exespoof
  assert.equal(asCurl.connect, -1, "judged as exespoof, the program it exec'd: blocked");
  assert.equal(spoofAs("/usr/bin/wget").connect, -1, "a wget spoof is blocked");
  // curl exec'd after the datapath started: judged by its exec record
  assert.equal(curl(), "passed");
  // the rule's own program, blocked for another path
  apply("/usr/bin/wget");
  assert.equal(curl(), "blocked");
});

test("path: a fork child and a thread of an exec'd allowed program keep its identity", () => {
  // rules name the file itself, not a symlink to it
  apply(realpathSync("/usr/bin/python3"));
  const forked = run(
    connectPy(`r, w = os.pipe()
pid = os.fork()
if pid == 0:
    os.write(w, attempt().encode())
    os._exit(0)
os.waitpid(pid, 0)
print("child", os.read(r, 16).decode())
out = []
t = threading.Thread(target=lambda: out.append(attempt()))
t.start(); t.join()
print("thread", out[0])`),
  );
  assert.match(forked, /child passed/, forked);
  assert.match(forked, /thread passed/, forked);
  // the same program under a rule for another one: blocked, so the pass above was the rule's
  apply("/usr/bin/curl");
  const other = run(connectPy(`print("main", attempt())`));
  assert.match(other, /main blocked/, other);
});

test("path: the records of processes exec'd before a restart survive it", async () => {
  lab.dp!.stop();
  lab.dp = undefined;
  lab.dp = Datapath.start({ interfaces: [], pinRoot: PIN_ROOT, cgroup: lab.cg.dir });
  apply("/usr/bin/curl");
  // exec'd (and forked) under the first daemon, spoofs under the second
  const child = spawn(
    "nsenter",
    lab.asNobody([spoof, "/usr/bin/curl", "127.0.0.1", String(PORT), "w"]),
  );
  let out = "";
  child.stdout.setEncoding("utf8").on("data", (d: string) => (out += d));
  child.stderr.setEncoding("utf8").on("data", (d: string) => (out += d));
  const exited = new Promise<void>((resolve) => child.on("exit", () => resolve()));
  try {
    for (let i = 0; i < 200 && !out.includes("forked"); i++)
      await new Promise((r) => setTimeout(r, 25));
    assert.match(out, /forked/, out);
    lab.dp.stop({ keepPins: true });
    lab.dp = undefined;
    lab.dp = Datapath.start({ interfaces: [], pinRoot: PIN_ROOT, cgroup: lab.cg.dir });
    assert.ok(lab.dp.adoption?.adopted.includes("exes"), JSON.stringify(lab.dp.adoption));
    apply("/usr/bin/curl");
    child.stdin.end("x");
    await exited;
  } finally {
    child.kill();
  }
  const r = spoofResult(out);
  assert.equal(r.exe, "/usr/bin/curl", out);
  assert.equal(r.connect, -1, "still judged as exespoof after the restart");
});

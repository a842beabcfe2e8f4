// `path` rules across a replaced executable: an upgrade by rename frees the old inode, and a file
// made right after may get its number; a process still running the old file is still the rule's
// program; overlayfs shows stat() another device than the one the kernel records at exec. The
// kernel keys an executable by (device, inode, generation) as it sees them.
import { after, before, test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn, spawnSync, type ChildProcess } from "node:child_process";
import { chmodSync, copyFileSync, mkdirSync, renameSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { readOpenFilesWith } from "../../src/attribution/file-identity.ts";
import { readOpenFiles } from "../../src/datapath/open-files.ts";
import { NOBODY, PathRuleLab } from "../helpers/path-rule-lab.ts";

const PORT = 8084;

let lab: PathRuleLab;

/** A copy of curl run as nobody: "blocked" (EPERM) or "passed" (refused: nothing listens). */
function curl(exe: string): string {
  const r = spawnSync(
    "nsenter",
    lab.asNobody([exe, "-sSv", "--max-time", "3", `http://127.0.0.1:${PORT}/`]),
    {
      encoding: "utf8",
      timeout: 20_000,
    },
  );
  const out = `${r.stdout}${r.stderr}`;
  if (/not permitted/i.test(out)) return "blocked";
  if (/refused/i.test(out)) return "passed";
  return out;
}

const sh = (command: string) => execFileSync("sh", ["-c", command], { encoding: "utf8" });

/** `from`'s bytes installed at `to` as dpkg and install(1) do: a new file renamed over it. */
function upgrade(from: string, to: string): void {
  const next = `${to}.new`;
  copyFileSync(from, next);
  chmodSync(next, 0o755);
  renameSync(next, to);
}

/** A long-running shell (a copy of bash) that tries a connect() each time it is asked. */
class Shell {
  readonly child: ChildProcess;
  #out = "";

  constructor(args: string[]) {
    this.child = spawn("nsenter", args, { stdio: ["pipe", "pipe", "pipe"] });
    this.child.stdout!.setEncoding("utf8").on("data", (d: string) => (this.#out += d));
    this.child.stderr!.setEncoding("utf8").on("data", (d: string) => (this.#out += d));
  }

  /** Runs `line`, returns what it printed. */
  async run(line: string): Promise<string> {
    this.#out = "";
    this.child.stdin!.write(`${line}; echo "#end"\n`);
    for (let i = 0; i < 400 && !this.#out.includes("#end"); i++)
      await new Promise((r) => setTimeout(r, 25));
    assert.match(this.#out, /#end/, `the shell answered: ${this.#out}`);
    return this.#out;
  }

  /** connect() from this very process (a builtin's redirection): "blocked" or "passed". */
  async connect(): Promise<string> {
    const out = await this.run(`true 3<>/dev/tcp/127.0.0.1/${PORT}`);
    if (/not permitted/i.test(out)) return "blocked";
    if (/refused/i.test(out)) return "passed";
    return out;
  }

  stop(): void {
    this.child.stdin!.end();
    this.child.kill();
  }
}

/** Undoes what `t` set up when it ends, however it ends: the last step first, each tried. */
function undoer(t: TestContext): (step: () => unknown) => void {
  const steps: (() => unknown)[] = [];
  t.after(() => {
    for (const step of steps.reverse()) {
      try {
        step();
      } catch {
        // the next step still runs
      }
    }
  });
  return (step) => steps.push(step);
}

/** A directory nobody may enter, removed at the end (after what is mounted in it). */
function dirFor(undo: (step: () => unknown) => void, name: string): string {
  const dir = join(lab.work, name);
  mkdirSync(dir, { recursive: true });
  chmodSync(dir, 0o755);
  undo(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Mounts with `args` on `at`, unmounted at the end. */
function mount(undo: (step: () => unknown) => void, at: string, args: string[]): void {
  execFileSync("mount", [...args, at]);
  undo(() => execFileSync("umount", [at]));
}

before(() => {
  lab = new PathRuleLab("exerepl", PORT);
});

after(() => lab?.remove());

test("path: a file that gets the number of an upgraded executable's freed inode is not it", (t) => {
  // one block group of 256 inodes: a new file gets the lowest free inode, the one just freed
  const undo = undoer(t);
  const fs = dirFor(undo, "ext4");
  const image = join(fs, "fs.img");
  const mnt = join(fs, "mnt");
  mkdirSync(mnt);
  sh(`truncate -s 64M ${image} && mkfs.ext4 -q -F -b 4096 -N 256 ${image}`);
  mount(undo, mnt, ["-o", "loop", image]); // the loop device goes with the unmount
  sh(`mkdir -m 755 ${mnt}/bin && mkdir -m 1777 ${mnt}/pub`);
  const tool = join(mnt, "bin", "tool");
  copyFileSync("/usr/bin/curl", tool);
  chmodSync(tool, 0o755);

  lab.allowOnly([tool]);
  assert.equal(curl(tool), "passed", "the rule's program");
  const freed = statSync(tool).ino;
  upgrade("/usr/bin/curl", tool);
  // before moat reads the directory again, nobody makes a file: it gets the freed number
  const mine = join(mnt, "pub", "mine");
  execFileSync(NOBODY[0]!, [...NOBODY.slice(1), "cp", "/usr/bin/curl", mine]);
  assert.equal(statSync(mine).ino, freed, "the filesystem reused the freed inode's number");
  assert.equal(curl(mine), "blocked", "nobody's file with the old tool's inode number");
  // once moat read the directory again: the new tool is the rule's, nobody's file still not
  lab.allowOnly([tool]);
  assert.equal(curl(tool), "passed", "the upgraded tool");
  assert.equal(curl(mine), "blocked", "nobody's file");
});

test("path: an executable on an overlay of two filesystems is matched", (t) => {
  const undo = undoer(t);
  const dir = dirFor(undo, "overlay");
  const [lower, layers, merged] = ["lower", "layers", "merged"].map((d) => join(dir, d)) as [
    string,
    string,
    string,
  ];
  for (const d of [lower, layers, merged]) mkdirSync(d);
  copyFileSync("/usr/bin/curl", join(lower, "tool"));
  chmodSync(join(lower, "tool"), 0o755);
  // the lower layer on this filesystem, the upper on a tmpfs: stat() shows a layer's device
  mount(undo, layers, ["-t", "tmpfs", "tmpfs"]);
  sh(`mkdir ${layers}/up ${layers}/work`);
  const layout = `lowerdir=${lower},upperdir=${layers}/up,workdir=${layers}/work`;
  mount(undo, merged, ["-t", "overlay", "overlay", "-o", layout]);

  lab.allowOnly([join(merged, "tool")]);
  assert.equal(curl(join(merged, "tool")), "passed", "the rule's program, run from the overlay");
  // the copy in the lower layer is the same bytes at another path: not the rule's
  assert.equal(curl(join(lower, "tool")), "blocked", "the lower layer's file");
});

test("path: a process running an executable replaced by an upgrade keeps matching", async (t) => {
  const undo = undoer(t);
  const bin = dirFor(undo, "run");
  const tool = join(bin, "tool");
  copyFileSync("/usr/bin/bash", tool);
  chmodSync(tool, 0o755);
  lab.allowOnly([tool]);
  const running = new Shell(lab.asNobody([tool, "--norc", "--noprofile"]));
  undo(() => running.stop());
  assert.equal(await running.connect(), "passed", "the rule's program, before the upgrade");

  upgrade("/usr/bin/bash", tool);
  lab.allowOnly([tool]); // what the daemon does once the directory's change settles
  assert.equal(await running.connect(), "passed", "the same process, after the upgrade");
  const fresh = new Shell(lab.asNobody([tool, "--norc", "--noprofile"]));
  undo(() => fresh.stop());
  assert.equal(await fresh.connect(), "passed", "a process of the new file");
});

test("path: a deleted file of another mount namespace at a rule's path is not the rule's", async (t) => {
  const undo = undoer(t);
  const bin = dirFor(undo, "foreign");
  const tool = join(bin, "tool");
  copyFileSync("/usr/bin/bash", tool);
  chmodSync(tool, 0o755);
  // nobody's own mount namespace: a tmpfs over the rule's directory, its own "tool" exec'd and
  // deleted, so /proc/PID/exe reads "<the rule's path> (deleted)" from moat's namespace too
  const script = `mount -t tmpfs tmpfs ${bin} && cp /usr/bin/bash ${tool} && exec ${tool} --norc --noprofile`;
  const foreign = new Shell(lab.asNobody(["unshare", "-Urm", "sh", "-c", script]));
  undo(() => foreign.stop());
  await foreign.run(`rm ${tool}`);
  const exe = await foreign.run("readlink /proc/$$/exe");
  assert.match(exe, / \(deleted\)/, exe);
  assert.ok(exe.includes(tool), exe);
  lab.allowOnly([tool]);
  assert.equal(await foreign.connect(), "blocked", "nobody's deleted file");
});

test("path: a file named as a replaced rule's file ('<path> (deleted)') is not the rule's", async (t) => {
  // a directory anyone may add to, where nobody cannot replace root's tool
  const undo = undoer(t);
  const bin = dirFor(undo, "sticky");
  chmodSync(bin, 0o1777);
  const tool = join(bin, "tool");
  copyFileSync("/usr/bin/bash", tool);
  chmodSync(tool, 0o755);
  const named = `${tool} (deleted)`;
  execFileSync(NOBODY[0]!, [...NOBODY.slice(1), "cp", "/usr/bin/bash", named]);
  const impostor = new Shell(lab.asNobody([named, "--norc", "--noprofile"]));
  undo(() => impostor.stop());
  const exe = await impostor.run("readlink /proc/$$/exe");
  assert.ok(exe.includes(`${tool} (deleted)`), exe);
  lab.allowOnly([tool]);
  assert.equal(await impostor.connect(), "blocked", "nobody's file, still linked");
});

test("path: without the kernel's reader of open files, rules match by inode and device", async (t) => {
  const undo = undoer(t);
  const bin = dirFor(undo, "stat");
  const tool = join(bin, "tool");
  copyFileSync("/usr/bin/curl", tool);
  chmodSync(tool, 0o755);
  const warnings: string[] = [];
  const onWarning = (w: Error) => warnings.push(w.message);
  process.on("warning", onWarning);
  undo(() => process.off("warning", onWarning));
  readOpenFilesWith(() => {
    throw new Error("no iterator here");
  });
  undo(() => readOpenFilesWith(readOpenFiles));
  lab.allowOnly([tool]);
  assert.equal(curl(tool), "passed", "the rule's program, known by stat()");
  assert.equal(curl("/usr/bin/curl"), "blocked", "another file");
  await new Promise((r) => setImmediate(r)); // warnings are emitted on the next tick
  assert.ok(
    warnings.some((w) => /stat\(\).*no iterator here.*overlay.*inode number of a removed/.test(w)),
    warnings.join("\n"),
  );
});

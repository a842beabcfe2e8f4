// Every way into the kernel's connect path is judged with its caller, as a process rule's user
// relies on (docs/socket-hooks.md, "Who"): io_uring's IORING_OP_CONNECT, TCP Fast Open's
// sendto(MSG_FASTOPEN), an MPTCP socket, an IPv4-mapped IPv6 destination, a user namespace's
// root.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { chmodSync, copyFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { PathRuleLab } from "../helpers/path-rule-lab.ts";

const SOURCE = fileURLToPath(new URL("../fixtures/connect-paths/connect-paths.c", import.meta.url));
const PORT = 8084;
let lab: PathRuleLab;
let allowed: string;
let other: string;

before(() => {
  lab = new PathRuleLab("cpaths", PORT);
  other = join(lab.work, "other");
  allowed = join(lab.work, "allowed");
  execFileSync("gcc", ["-O1", "-o", other, SOURCE]);
  copyFileSync(other, allowed);
  chmodSync(allowed, 0o755);
});

after(() => lab?.remove());

/** The connect result of `cmd` as nobody: "blocked" (EPERM) or "passed" (refused). */
function result(cmd: string[]): string {
  const r = spawnSync("nsenter", lab.asNobody(cmd), { encoding: "utf8", timeout: 20_000 });
  const out = `${r.stdout}${r.stderr}`.trim();
  const code = /result=(-?\d+)/.exec(out)?.[1];
  return code === "-1" ? "blocked" : code === "-111" ? "passed" : out;
}

test("io_uring, TCP Fast Open, MPTCP and IPv4-mapped connects are judged by the caller's executable", () => {
  lab.allowOnly([allowed]);
  for (const how of ["tcp", "tfo", "uring", "mptcp"])
    for (const to of ["127.0.0.1", "::ffff:127.0.0.1"]) {
      const args = [how, to, String(PORT)];
      assert.equal(result([allowed, ...args]), "passed", `allowed ${how} ${to}`);
      assert.equal(result([other, ...args]), "blocked", `other ${how} ${to}`);
    }
  // root in a user namespace of its own is still nobody, and still the same executable
  assert.equal(result(["unshare", "-Ur", other, "tcp", "127.0.0.1", String(PORT)]), "blocked");
  assert.equal(result(["unshare", "-Ur", allowed, "tcp", "127.0.0.1", String(PORT)]), "passed");
});

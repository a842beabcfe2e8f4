// moat ssh-authkeys falls back to the break-glass keys only when the daemon is not there (its
// socket missing or refusing connections), never when it is there and does not answer well: a
// local user who can make the API fail (flooding it) must not turn break-glass keys on.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:net";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sshAuthkeysCommand } from "../../src/cli/commands/ssh-authkeys.ts";

const KEY =
  "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOZ1oUmk1ZmiJZq7VZyP6Gzj7hBuEcyKGJbX7yT1cQ7a alice@laptop";
const dir = mkdtempSync(join(tmpdir(), "moat-authkeys-"));
test.after(() => rmSync(dir, { recursive: true, force: true }));
const glass = join(dir, "break-glass");
writeFileSync(glass, `alice ${KEY}\n`);
chmodSync(glass, 0o600);

async function run(api: string) {
  const out: string[] = [];
  const err: string[] = [];
  const rc = await sshAuthkeysCommand.run(
    { values: { api, "break-glass": glass }, positionals: ["alice", "192.0.2.7"] } as never,
    { out: (l) => out.push(l), err: (l) => err.push(l) },
  );
  return { rc, out, err };
}

test("no daemon socket: the break-glass keys", { skip: process.getuid?.() !== 0 }, async () => {
  const r = await run(`unix:${join(dir, "absent.sock")}`);
  assert.equal(r.rc, 0, r.err.join("\n"));
  assert.deepEqual(r.out, [KEY]);
});

test("a daemon there that drops the request: nothing printed, no break-glass", async () => {
  const sock = join(dir, "api.sock");
  const server = createServer((s) => s.destroy());
  await new Promise<void>((r) => server.listen(sock, r));
  try {
    const r = await run(`unix:${sock}`);
    assert.equal(r.rc, 1);
    assert.deepEqual(r.out, []);
    assert.match(r.err.join("\n"), /no key printed/);
  } finally {
    server.close();
  }
});

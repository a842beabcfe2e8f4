// Logins to a real sshd judged by the policy through moat ssh-authkeys (sshd's
// AuthorizedKeysCommand, AuthorizedKeysFile none): the key a rule names logs in from the lab's
// client, another key is refused, each decision is an event in the audit log; with the daemon
// unreachable the command prints nothing and fails, except the root-only break-glass keys.
//
// Run time: about 15 s (the daemon's start dominates).
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { chmodSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { startMoatLab, type MoatLab } from "../helpers/moat-lab.ts";
import { MOAT } from "../helpers/paths.ts";
import {
  authorizedKeysCommand,
  makeKey,
  sshLoginArgs,
  startSshd,
  tempDir,
  type KeyPair,
  type Sshd,
} from "../helpers/sshd.ts";

const PORT = 2222;
let lab: MoatLab;
let sshd: Sshd;
let tmp: ReturnType<typeof tempDir>;
let command: ReturnType<typeof authorizedKeysCommand> | undefined;
let alice: KeyPair;
let bob: KeyPair;

before(async () => {
  tmp = tempDir("authkeys");
  alice = makeKey(tmp.dir, "alice");
  bob = makeKey(tmp.dir, "bob");
  const host = makeKey(tmp.dir, "host");
  lab = await startMoatLab(
    "ssh-authkeys",
    (l) => `version: 1
mode: prevent
defaults: { ingress: block, egress: allow }
attach: { interfaces: [${l.ifB}] }
logging: { audit: { path: ${l.auditPath} } }
rules:
  - name: ssh-alice
    direction: ingress
    action: allow
    log: true
    layer3: { remote: [${l.v4.a}] }
    layer4: { protocol: tcp, port: [${PORT}] }
    layer7: { ssh: { client_key: ["${alice.pub}"], user: [root] } }
  - { name: ssh-port, direction: ingress, action: allow, layer4: { protocol: tcp, port: [${PORT}] } }
`,
    ["tcp:80"],
  );
  command = authorizedKeysCommand(MOAT, `ssh-authkeys --api unix:${lab.apiSocket}`);
  sshd = await startSshd({
    dir: tmp.dir,
    netns: lab.b,
    address: lab.v4.b,
    port: PORT,
    hostKeys: [host],
    config: [
      "AuthorizedKeysFile none",
      `AuthorizedKeysCommand ${command.path} --key-type %t --key %k %u`,
      "AuthorizedKeysCommandUser root",
    ],
  });
});

after(async () => {
  await sshd?.close();
  await lab?.close();
  tmp?.remove();
  command?.remove();
});

async function login(key: KeyPair) {
  const ssh = spawn(
    "ip",
    ["netns", "exec", lab.a, "ssh", ...sshLoginArgs(key.path, lab.v4.b, PORT, "echo logged-in")],
    { stdio: ["ignore", "pipe", "pipe"], timeout: 60_000 },
  );
  let out = "";
  let err = "";
  ssh.stdout.setEncoding("utf8").on("data", (d: string) => (out += d));
  ssh.stderr.setEncoding("utf8").on("data", (d: string) => (err += d));
  const status = await new Promise<number | null>((r) => ssh.once("close", (code) => r(code)));
  return { status, out: out.trim(), err };
}

/** The audit log once it has a line matching `pattern` (events are written as they come). */
async function auditLine(pattern: RegExp): Promise<string> {
  for (let i = 0; i < 100; i++) {
    const line = lab
      .audit()
      .split("\n")
      .find((l) => pattern.test(l));
    if (line) return line;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.fail(`no audit line ${pattern} in:\n${lab.audit()}\nsshd:\n${sshd.log.join("\n")}`);
}

test("the key a rule names logs in; the event names the login and the key", async () => {
  const r = await login(alice);
  assert.equal(r.out, "logged-in", `${r.err}\nsshd:\n${sshd.log.join("\n")}`);
  const line = await auditLine(/ALLOWED ingress tcp .* SSH login root key SHA256/);
  assert.ok(line.includes(alice.fingerprint), line);
  assert.match(line, /by rule ssh-alice/);
});

test("another key is refused by the policy, and the refusal is an event", async () => {
  const r = await login(bob);
  assert.notEqual(r.status, 0);
  assert.match(r.err, /Permission denied \(publickey\)/);
  const line = await auditLine(
    new RegExp(`BLOCKED .*SSH login root key ${bob.fingerprint.replace(/[+/]/g, "\\$&")}`),
  );
  assert.match(line, /by rule ssh-port/);
});

test("the daemon unreachable: nothing printed and exit 1, or the break-glass keys", async () => {
  const glass = join(tmp.dir, "break-glass");
  writeFileSync(glass, `# emergency\nroot ${bob.pub}\nadmin ${alice.pub}\n`);
  chmodSync(glass, 0o600);
  const loose = join(tmp.dir, "break-glass-loose");
  writeFileSync(loose, `root ${bob.pub}\n`);
  chmodSync(loose, 0o644);
  const run = (file: string) =>
    new Promise<{ status: number | null; out: string }>((resolve) => {
      const api = `unix:${join(tmp.dir, "none.sock")}`;
      const child = spawn(MOAT, [
        "ssh-authkeys",
        "--api",
        api,
        "--break-glass",
        file,
        "root",
        "10.9.9.9",
      ]);
      let out = "";
      child.stdout.setEncoding("utf8").on("data", (d: string) => (out += d));
      child.once("close", (status) => resolve({ status, out }));
    });
  // three at once: each is a Node start
  const [missing, untrusted, open] = await Promise.all([
    run(join(tmp.dir, "missing")),
    run(loose),
    run(glass),
  ]);
  assert.deepEqual(missing, { status: 1, out: "" });
  assert.deepEqual(untrusted, { status: 1, out: "" }, "a file others can read is not used");
  assert.deepEqual(open, { status: 0, out: `${bob.pub}\n` });
});

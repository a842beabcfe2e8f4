// Host-key pinning by moat's SSH handler, driven through an L7Context around the real evaluator
// (test/helpers/l7-ssh-relay.ts stands in for the relay and its kernel redirect): a real `ssh`
// logs in to the sshd whose host key the policy pins, and is reset before authenticating to
// another sshd; each decision is reported with the server's version and key. A server that
// never shows its key is cut off at the handler's timeout.
//
// Run time: about 5 s.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { connect, createServer, type AddressInfo } from "node:net";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { checkPolicySource, formatDiagnostic, type PolicyModel } from "../../src/config/index.ts";
import { sshHandler, sshHandlerWith } from "../../src/l7/ssh/index.ts";
import { startTestRelay, type TestRelay } from "../helpers/l7-ssh-relay.ts";
import {
  makeKey,
  sshLoginArgs,
  startSshd,
  tempDir,
  type KeyPair,
  type Sshd,
} from "../helpers/sshd.ts";
import { freePort } from "../helpers/ports.ts";

let tmp: ReturnType<typeof tempDir>;
let user: KeyPair;
let keyA: KeyPair;
let keyB: KeyPair;
let sshdA: Sshd;
let sshdB: Sshd;
let model: PolicyModel;

before(async () => {
  tmp = tempDir("pin");
  user = makeKey(tmp.dir, "user");
  keyA = makeKey(tmp.dir, "host-a");
  keyB = makeKey(tmp.dir, "host-b");
  const authorized = join(tmp.dir, "authorized_keys");
  writeFileSync(authorized, `${user.pub}\n`);
  const config = [`AuthorizedKeysFile ${authorized}`];
  sshdA = await startSshd({ dir: tmp.dir, port: await freePort(), hostKeys: [keyA], config });
  sshdB = await startSshd({ dir: tmp.dir, port: await freePort(), hostKeys: [keyB], config });
  const text = `version: 1
mode: prevent
defaults: { ingress: allow, egress: block }
rules:
  - name: pinned-server
    direction: egress
    action: allow
    layer4: { protocol: tcp }
    layer7: { ssh: { host_key: ["${keyA.fingerprint}"], version: ["SSH-2.0-OpenSSH_*"] } }
`;
  const checked = checkPolicySource(text, "pin.yaml", { read: () => "" } as never);
  assert.ok(checked.model, checked.diagnostics.map((d) => formatDiagnostic(d)).join("\n"));
  model = checked.model;
});

after(async () => {
  await sshdA?.close();
  await sshdB?.close();
  tmp?.remove();
});

async function ssh(port: number): Promise<{ status: number | null; out: string; err: string }> {
  const args = sshLoginArgs(user.path, "127.0.0.1", port, "echo pinned-ok");
  const child = spawn("ssh", args, { stdio: ["ignore", "pipe", "pipe"], timeout: 30_000 });
  let out = "";
  let err = "";
  child.stdout.setEncoding("utf8").on("data", (d: string) => (out += d));
  child.stderr.setEncoding("utf8").on("data", (d: string) => (err += d));
  const status = await new Promise<number | null>((r) => child.once("close", (c) => r(c)));
  return { status, out: out.trim(), err };
}

async function through(server: Sshd, run: (relay: TestRelay) => Promise<void>): Promise<TestRelay> {
  const relay = await startTestRelay(model, sshHandler, { ip: "127.0.0.1", port: server.port });
  try {
    await run(relay);
  } finally {
    await relay.close();
  }
  return relay;
}

test("the pinned server: the client logs in; allowed with its version and key", async () => {
  const relay = await through(sshdA, async (relay) => {
    const done = relay.handled();
    const r = await ssh(relay.port);
    assert.equal(r.out, "pinned-ok", `${r.err}\n${relay.logs.join("\n")}`);
    await done;
  });
  assert.equal(relay.reports.length, 1);
  const [report] = relay.reports;
  assert.equal(report?.decision.verdict, "allowed");
  assert.equal(report?.decision.rule, "pinned-server");
  assert.equal(report?.layer7.ssh?.host_key, keyA.fingerprint);
  assert.match(report?.layer7.ssh?.version ?? "", /^SSH-2\.0-OpenSSH_9/);
  assert.equal(report?.splice, "copy");
});

test("another server: reset before the client authenticates; blocked with that key", async () => {
  const before = sshdB.log.length;
  const relay = await through(sshdB, async (relay) => {
    const done = relay.handled();
    const r = await ssh(relay.port);
    await done;
    assert.notEqual(r.status, 0);
    assert.equal(r.out, "");
    assert.doesNotMatch(r.err, /Permission denied|Host key verification/);
  });
  assert.equal(relay.reports.length, 1);
  const [report] = relay.reports;
  assert.equal(report?.decision.verdict, "blocked");
  assert.equal(report?.decision.rule, "default");
  assert.equal(report?.layer7.ssh?.host_key, keyB.fingerprint);
  // sshd saw no authentication attempt
  assert.doesNotMatch(sshdB.log.slice(before).join("\n"), /publickey|Accepted|Failed/);
});

test("a server that never shows its host key: both closed at the timeout", async () => {
  const silent = createServer((s) => {
    s.on("error", () => {});
    s.write("SSH-2.0-Silent_1.0\r\n");
  });
  await new Promise<void>((r) => silent.listen(0, "127.0.0.1", r));
  const port = (silent.address() as AddressInfo).port;
  const relay = await startTestRelay(model, sshHandlerWith({ timeoutMs: 300 }), {
    ip: "127.0.0.1",
    port,
  });
  try {
    const done = relay.handled();
    const client = connect(relay.port, "127.0.0.1");
    client.on("error", () => {});
    client.write("SSH-2.0-Test_1.0\r\n");
    let got = "";
    client.on("data", (d: Buffer) => (got += d.toString("latin1")));
    await new Promise<void>((r) => client.once("close", () => r()));
    await done;
    assert.equal(got, "SSH-2.0-Silent_1.0\r\n", "the banner passes; nothing more");
    assert.match(relay.logs.join("\n"), /no host key within 300 ms/);
    // a connection that ends before the verdict is reported blocked, with why
    assert.equal(relay.reports.length, 1);
    assert.equal(relay.reports[0]?.decision.verdict, "blocked");
    const ended = (relay.reports[0]?.layer7.ssh as { ended?: string } | undefined)?.ended;
    assert.equal(ended, "no host key within 300 ms");
  } finally {
    await relay.close();
    silent.close();
  }
});

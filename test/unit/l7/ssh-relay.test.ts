// SSH through the real relay. A host key pin when moat does not see the host key (a key exchange
// it does not read): the key unknown matches no allow rule that pins keys, and every block rule
// that names keys, in the relay's judgement (decide) and between a client and a server. A client
// taken for SSH (silent until the server speaks) whose first line is not an SSH version: closed,
// nothing it sent reaches the server.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createServer, connect, type Socket } from "node:net";
import { parsePolicy, type PolicyModel } from "../../../src/config/index.ts";
import { decide } from "../../../src/l7/decide.ts";
import type { ConnectionFacts } from "../../../src/policy/facts.ts";
import { openRealRelay } from "../../helpers/l7-real-relay.ts";
import { kexinit } from "../../helpers/ssh-packets.ts";

const PIN = "SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s";
const OTHER = "SHA256:AAAAztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s";

const policy = (rules: string): PolicyModel =>
  parsePolicy(
    `version: 1\nmode: prevent\nattach: { cgroup: / }\ndefaults: { ingress: block, egress: block }\nrules:\n${rules}`,
    "ssh-pin.yaml",
  );

const pinned = (action: string, name: string) => `  - name: ${name}
    direction: egress
    action: ${action}
    layer4: { protocol: tcp, port: [22] }
    layer7: { ssh: { host_key: ["${PIN}"] } }
`;
const anySsh = `  - name: any-ssh
    direction: egress
    action: allow
    layer4: { protocol: tcp, port: [22] }
`;

const facts: ConnectionFacts = {
  direction: "egress",
  protocol: "tcp",
  family: 4,
  local: { ip: "127.0.0.1", port: 40000 },
  remote: { ip: "192.0.2.1", port: 22, names: [] },
  process: { pid: 4242, name: "ssh" },
};
const VERSION = "SSH-2.0-Server";
const judged = (model: PolicyModel, host_key?: string) => {
  const d = decide(model, facts, { ssh: { version: VERSION, ...(host_key ? { host_key } : {}) } });
  return [d.verdict, d.rule];
};

test("no host key seen: an allow rule pinning keys does not let the server through", () => {
  const model = policy(pinned("allow", "only-known"));
  assert.deepEqual(judged(model), ["blocked", "default"]);
  assert.deepEqual(judged(model, PIN), ["allowed", "only-known"]);
  assert.deepEqual(judged(model, OTHER), ["blocked", "default"]);
});

test("no host key seen: a later rule without a pin still decides; a block rule naming keys blocks", () => {
  assert.deepEqual(judged(policy(pinned("allow", "only-known") + anySsh)), ["allowed", "any-ssh"]);
  const blocking = policy(pinned("block", "bad-key") + anySsh);
  assert.deepEqual(judged(blocking), ["blocked", "bad-key"]);
  assert.deepEqual(judged(blocking, OTHER), ["allowed", "any-ssh"]);
  const both = policy(pinned("allow", "only-known") + pinned("block", "bad-key") + anySsh);
  assert.deepEqual(judged(both), ["blocked", "bad-key"]);
});

test("through the relay: a server on a key exchange moat does not read is reset, the pin unmet", async (t) => {
  let serverGot = "";
  const server = createServer((s) => {
    s.on("data", (d: Buffer) => (serverGot += d.toString("latin1")));
    s.on("error", () => {});
    s.write(Buffer.concat([Buffer.from("SSH-2.0-Server\r\n"), kexinit("x@unread")]));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as { port: number }).port;
  const model = policy(pinned("allow", "only-known").replace("port: [22]", `port: [${port}]`));
  const { relay, events } = await openRelay(port, model);
  t.after(() => {
    relay.close();
    server.close();
  });
  const a = relay.addressFor(4)!;
  const client: Socket = connect({ host: a.ip, port: a.port });
  const ended = new Promise<string>((r) => {
    client.on("error", (e: NodeJS.ErrnoException) => r(e.code ?? e.message));
    client.on("close", () => r("closed"));
  });
  client.on("data", () => {});
  client.write(Buffer.concat([Buffer.from("SSH-2.0-Client\r\n"), kexinit("x@unread")]));
  assert.equal(await ended, "ECONNRESET");
  assert.deepEqual(
    events.map((e) => [e.type, e.rule, e.layer7?.ssh?.host_key]),
    [["blocked", "default", undefined]],
  );
  assert.doesNotMatch(serverGot, /CLIENT/);
});

const openRelay = (port: number, model: PolicyModel) =>
  openRealRelay({ port, policy: model, comm: "ssh" });

test("a client silent until the server speaks, then not SSH: closed, nothing reaches the server", async (t) => {
  let serverGot = "";
  const server = createServer((s) => {
    s.on("data", (d: Buffer) => (serverGot += d.toString("latin1")));
    s.on("error", () => {});
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as { port: number }).port;
  const model = policy(`  - name: no-admin
    direction: egress
    action: block
    layer7: { http: { path: ["/admin/*"] } }
${pinned("allow", "pinned-git")}  - name: web
    direction: egress
    action: allow
    layer4: { protocol: tcp, port: [${port}] }
`);
  const { relay, logs } = await openRelay(port, model);
  t.after(() => {
    relay.close();
    server.close();
  });
  for (const first of [
    "POST /admin/delete-all HTTP/1.1\r\nHost: a\r\n\r\n",
    "hello\r\nSSH-2.0-x\r\n",
  ]) {
    const a = relay.addressFor(4)!;
    const client: Socket = connect({ host: a.ip, port: a.port });
    const ended = new Promise<string>((r) => {
      client.on("error", (e: NodeJS.ErrnoException) => r(e.code ?? e.message));
      client.on("close", () => r("closed"));
    });
    // silent past the relay's wait for a first byte: taken for SSH
    await new Promise((r) => setTimeout(r, 450));
    client.write(first);
    assert.match(await ended, /ECONNRESET|closed/);
    assert.equal(serverGot, "", JSON.stringify(first));
  }
  assert.match(logs.join("\n"), /not an SSH version/);
});

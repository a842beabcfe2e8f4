// A client that sends lines before its SSH version (servers such as Go's x/crypto/ssh skip
// them): moat cannot tell it from another protocol, so where the policy judges SSH such a
// connection is judged as SSH with nothing seen: blocking SSH rules apply, pins let nothing
// through (docs/l7-ssh.md).
import { test } from "node:test";
import assert from "node:assert/strict";
import { createServer, connect, type Socket } from "node:net";
import { parsePolicy } from "../../../src/config/index.ts";
import { decide } from "../../../src/l7/decide.ts";
import type { ConnectionFacts } from "../../../src/policy/facts.ts";
import { openRealRelay } from "../../helpers/l7-real-relay.ts";
import { kexinit, sshPacket, sshString } from "../../helpers/ssh-packets.ts";

const hostBlob = Buffer.concat([sshString("ssh-ed25519"), sshString(Buffer.alloc(32, 9))]);
const reply = sshPacket(
  Buffer.concat([
    Buffer.from([31]),
    sshString(hostBlob),
    sshString(Buffer.alloc(32, 1)),
    sshString(Buffer.alloc(83, 2)),
  ]),
);

const policyText = (port: number, extra = "") => `version: 1
mode: prevent
attach: { cgroup: / }
defaults: { ingress: allow, egress: allow }
rules:
${extra}  - name: pinned-git
    direction: egress
    action: allow
    layer4: { protocol: tcp, port: [${port}] }
    layer7: { ssh: { host_key: ["SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s"] } }
  - name: no-other-ssh
    direction: egress
    action: block
    layer4: { protocol: tcp, port: [${port}] }
    layer7: { ssh: { version: ["*"] } }
`;

test("a line before the client's SSH version: judged as SSH unseen, the blocking ssh rule applies", async (t) => {
  // Go-like server: skips client lines until one starts with SSH-, then answers KEXINIT with 31
  const server = createServer((s) => {
    s.on("error", () => {});
    let buf = Buffer.alloc(0);
    let versionSeen = false;
    let replied = false;
    s.write(Buffer.concat([Buffer.from("SSH-2.0-GoServer\r\n"), kexinit("curve25519-sha256")]));
    s.on("data", (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      while (!versionSeen) {
        const nl = buf.indexOf(10);
        if (nl < 0) return;
        const line = buf.subarray(0, nl).toString("latin1");
        buf = buf.subarray(nl + 1);
        if (line.startsWith("SSH-")) versionSeen = true;
      }
      if (!replied && buf.length >= 5) {
        replied = true;
        s.write(reply);
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as { port: number }).port;
  const model = parsePolicy(policyText(port), "p.yaml");
  const { relay, events } = await openRealRelay({ port, policy: model, comm: "ssh" });
  t.after(() => {
    relay.close();
    server.close();
  });
  const run = async (prefix: string) => {
    const a = relay.addressFor(4)!;
    const c: Socket = connect({ host: a.ip, port: a.port });
    let got = Buffer.alloc(0);
    c.on("data", (d: Buffer) => (got = Buffer.concat([got, d])));
    const ended = new Promise<string>((r) => {
      c.on("error", (e: NodeJS.ErrnoException) => r(e.code ?? e.message));
      c.on("close", () => r("closed"));
    });
    c.write(
      Buffer.concat([
        Buffer.from(prefix + "SSH-2.0-Client\r\n"),
        kexinit("curve25519-sha256"),
        sshPacket(Buffer.concat([Buffer.from([30]), sshString(Buffer.alloc(32, 3))])),
      ]),
    );
    const r = await Promise.race([
      ended,
      new Promise<string>((res) => setTimeout(() => res("open"), 1500)),
    ]);
    c.destroy();
    return { r, gotReply: got.includes(reply) };
  };
  for (const prefix of ["", "\r\n", "hello\r\n"]) {
    const before = events.length;
    const got = await run(prefix);
    assert.equal(got.gotReply, false, `prefix ${JSON.stringify(prefix)}: the key exchange reply`);
    assert.notEqual(got.r, "open", `prefix ${JSON.stringify(prefix)}: reset`);
    const e = events.slice(before).find((x) => x.type === "blocked");
    assert.equal(e?.rule, "no-other-ssh", `prefix ${JSON.stringify(prefix)}`);
  }
});

const facts: ConnectionFacts = {
  direction: "egress",
  family: 4,
  protocol: "tcp",
  local: { ip: "10.0.0.1", port: 40000 },
  remote: { ip: "192.0.2.1", port: 22 },
  process: { pid: 1, name: "ssh" },
};

test("nothing seen of SSH: an allow rule on the version does not let it through either", () => {
  const model = parsePolicy(
    `version: 1\nmode: prevent\nattach: { cgroup: / }\ndefaults: { ingress: block, egress: block }\nrules:\n` +
      `  - { name: openssh, direction: egress, action: allow, layer4: { protocol: tcp, port: [22] }, layer7: { ssh: { version: ["SSH-2.0-OpenSSH_*"] } } }\n`,
    "p.yaml",
  );
  const d = decide(model, facts, { ssh: {} });
  assert.equal(d.verdict, "blocked");
  assert.equal(d.rule, "default");
  assert.equal(
    decide(model, facts, { ssh: { version: "SSH-2.0-OpenSSH_9.2" } }).verdict,
    "allowed",
  );
});

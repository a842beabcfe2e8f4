// An SSH server that resets the relay's connection before its host key (a TCP RST, which Node
// reports as an 'error' on the relay's upstream socket) ends that connection, reported blocked
// with why, and nothing else: the daemon, which any local user's ssh reaches through the relay,
// goes on judging the next one. The real relay and SSH handler, a scripted server on loopback.
import { test } from "node:test";
import assert from "node:assert/strict";
import { connect, createServer, type Socket } from "node:net";
import { parsePolicy } from "../../../src/config/index.ts";
import { openRealRelay } from "../../helpers/l7-real-relay.ts";
import { kexinit } from "../../helpers/ssh-packets.ts";

const policy = (port: number) =>
  parsePolicy(
    `version: 1
mode: prevent
attach: { cgroup: / }
defaults: { ingress: block, egress: allow }
rules:
  - name: pinned
    direction: egress
    action: allow
    layer4: { protocol: tcp, port: [${port}] }
    layer7: { ssh: { host_key: ["SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"] } }
`,
    "ssh-reset.yaml",
  );

/** Connects to the relay, sends `bytes`, resolves with how the connection ended. */
function client(port: number, bytes: Buffer): Promise<string> {
  const s: Socket = connect({ host: "127.0.0.1", port });
  s.write(bytes);
  return new Promise((resolve) => {
    s.on("error", (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
    s.on("close", () => resolve("closed"));
  });
}

test("a server that resets before its host key: that connection is reset and reported, the relay goes on", async (t) => {
  // sends its version and KEXINIT, then resets as soon as the client's first bytes arrive
  const server = createServer((s) => {
    s.on("error", () => {});
    s.write(Buffer.concat([Buffer.from("SSH-2.0-Resetter\r\n"), kexinit("curve25519-sha256")]));
    s.once("data", () => s.resetAndDestroy());
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  t.after(() => server.close());
  const port = (server.address() as { port: number }).port;
  const { relay, events } = await openRealRelay({ port, policy: policy(port), comm: "ssh" });
  t.after(() => relay.close());
  const a = relay.addressFor(4)!;
  for (let i = 0; i < 2; i++) {
    const ended = await client(a.port, Buffer.from("SSH-2.0-Client\r\n"));
    assert.match(ended, /ECONNRESET|closed/);
  }
  for (let i = 0; i < 100 && events.length < 2; i++) await new Promise((r) => setTimeout(r, 20));
  assert.deepEqual(
    events.map((e) => [e.type, e.layer7?.ssh?.ended]),
    [
      ["blocked", "server closed before the host key"],
      ["blocked", "server closed before the host key"],
    ],
  );
});

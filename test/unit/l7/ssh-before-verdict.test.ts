// What an SSH client and server exchange through moat's relay before its verdict on the server's
// host key: only the key exchange's first messages. A client that sends any other message (IGNORE,
// a service request, ...) or more than a small budget is reset, reported blocked with why; the
// server's other messages are held from the client. A connection that ends or times out before
// the host key is reported, with why. Scripted client and server peers on loopback, the real relay
// and its SSH handler.
import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { createServer, connect, type Socket } from "node:net";
import { parsePolicy, type PolicyModel } from "../../../src/config/index.ts";
import type { MoatEvent } from "../../../src/datapath/index.ts";
import { L7Relay, type L7Handler } from "../../../src/l7/index.ts";
import { sha256Fingerprint, sshHandlerWith } from "../../../src/l7/ssh/index.ts";
import { freePort } from "../../helpers/ports.ts";
import { kexinit, sshPacket, sshString } from "../../helpers/ssh-packets.ts";

const HOST_KEY = Buffer.concat([sshString("ssh-ed25519"), sshString(Buffer.alloc(32, 7))]);
const PIN = sha256Fingerprint(HOST_KEY);

const CURVE = "curve25519-sha256";
const GEX = "diffie-hellman-group-exchange-sha256";

const message = (type: number, body: Buffer | string = "") =>
  sshPacket(Buffer.concat([Buffer.from([type]), Buffer.from(body)]));
/** SSH_MSG_IGNORE carrying `data`. */
const ignore = (data: string) => message(2, sshString(data));
/** The server's key exchange reply (31, or 33 for group exchange) with the host key. */
const reply = (type: number) =>
  message(type, Buffer.concat([sshString(HOST_KEY), sshString("f"), sshString("sig")]));

const policy = (port: number): PolicyModel =>
  parsePolicy(
    `version: 1
mode: prevent
attach: { cgroup: / }
defaults: { ingress: block, egress: block }
rules:
  - name: pinned-bastion
    direction: egress
    action: allow
    log: true
    layer4: { protocol: tcp, port: [${port}] }
    layer7: { ssh: { host_key: ["${PIN}"] } }
  - name: other-ssh
    direction: egress
    action: block
    layer4: { protocol: tcp, port: [${port}] }
    layer7: { ssh: {} }
`,
    "pin.yaml",
  );

interface Peer {
  got: () => string;
  ended: Promise<string>;
}

/** A server that answers each connection with `script(socket)`; what it received is kept. */
async function scriptedServer(t: TestContext, script: (s: Socket, got: () => string) => void) {
  let received = "";
  const server = createServer((s) => {
    s.on("data", (d: Buffer) => (received += d.toString("latin1")));
    s.on("error", () => {});
    script(s, () => received);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  t.after(() => server.close());
  return { port: (server.address() as { port: number }).port, got: () => received };
}

async function openRelay(t: TestContext, port: number, handler?: L7Handler) {
  const events: MoatEvent[] = [];
  const logs: string[] = [];
  const model = policy(port);
  const relay = await L7Relay.open({
    original: () => ({
      original: { ip: "127.0.0.1", port },
      protocol: "tcp",
      redirect: 0,
      generation: 1,
      target: { ip: "127.0.0.1", port: 1 },
      owner: { pid: 4242, uid: 1000, cgroupId: 7n, comm: "ssh" },
    }),
    process: () => ({ pid: 4242, name: "ssh" }) as never,
    names: () => [],
    policy: () => model,
    generation: () => 1,
    report: (e) => events.push(e),
    log: (line) => logs.push(line),
    ...(handler ? { handlers: { ssh: handler } } : {}),
  });
  t.after(() => relay.close());
  return { relay, events, logs };
}

/** A client of the relay that sends `first`, then calls `then` once it has received `when`. */
function client(relay: L7Relay, first: Buffer, when?: RegExp, then?: (s: Socket) => void): Peer {
  const a = relay.addressFor(4)!;
  const s: Socket = connect({ host: a.ip, port: a.port });
  let received = "";
  let done = false;
  s.on("data", (d: Buffer) => {
    received += d.toString("latin1");
    if (!done && when && then && when.test(received)) {
      done = true;
      then(s);
    }
  });
  const ended = new Promise<string>((r) => {
    s.on("error", (e: NodeJS.ErrnoException) => r(e.code ?? e.message));
    s.on("close", () => r("closed"));
  });
  s.write(first);
  return { got: () => received, ended };
}

/** Resolves once the relay has reported an event (or after 2 s). */
async function eventAfter(events: MoatEvent[]): Promise<void> {
  for (let i = 0; i < 100 && events.length === 0; i++) await new Promise((r) => setTimeout(r, 20));
}

const seen = (events: MoatEvent[]) =>
  events.map((e) => [e.type, e.rule, e.hook, e.layer7?.ssh?.host_key, e.layer7?.ssh?.ended]);

const CLIENT_SECRET = `CLIENT-EXFIL-${"x".repeat(60_000)}`;

test("IGNORE packets both ways before the verdict: neither secret passes; reset, blocked with why", async (t) => {
  const server = await scriptedServer(t, (s) => {
    s.write(
      Buffer.concat([
        Buffer.from("SSH-2.0-Server\r\n"),
        ignore("SERVER-SECRET-BEFORE-VERDICT"),
        kexinit(CURVE),
      ]),
    );
  });
  const { relay, events } = await openRelay(t, server.port);
  const c = client(relay, Buffer.from("SSH-2.0-Client\r\n"), /SSH-2\.0-Server\r\n/, (s) => {
    for (let at = 0; at < CLIENT_SECRET.length; at += 30_000)
      s.write(ignore(CLIENT_SECRET.slice(at, at + 30_000)));
  });
  assert.equal(await c.ended, "ECONNRESET");
  await eventAfter(events);
  assert.doesNotMatch(c.got(), /SERVER-SECRET/);
  assert.equal(c.got(), "SSH-2.0-Server\r\n", "the server's version line alone");
  assert.doesNotMatch(server.got(), /CLIENT-EXFIL/);
  assert.deepEqual(seen(events), [
    ["blocked", "other-ssh", "l7_relay", undefined, "client: message 2 before the host key"],
  ]);
});

test("any message but the key exchange's from the client before the verdict: reset", async (t) => {
  for (const type of [4, 5, 21, 50, 94]) {
    const server = await scriptedServer(t, (s) => {
      s.write(Buffer.concat([Buffer.from("SSH-2.0-Server\r\n"), kexinit(CURVE)]));
    });
    const { relay, events } = await openRelay(t, server.port);
    const c = client(
      relay,
      Buffer.concat([Buffer.from("SSH-2.0-Client\r\n"), kexinit(CURVE)]),
      /SSH-2\.0-Server/,
      (s) => s.write(message(type, sshString(`CLIENT-DATA-${type}`))),
    );
    assert.equal(await c.ended, "ECONNRESET", `message ${type}`);
    await eventAfter(events);
    assert.doesNotMatch(server.got(), /CLIENT-DATA/, `message ${type}`);
    assert.deepEqual(seen(events), [
      [
        "blocked",
        "other-ssh",
        "l7_relay",
        undefined,
        `client: message ${type} before the host key`,
      ],
    ]);
  }
});

test("key exchange messages past the client's budget before the verdict: reset, blocked", async (t) => {
  const server = await scriptedServer(t, (s) => {
    s.write(Buffer.concat([Buffer.from("SSH-2.0-Server\r\n"), kexinit(CURVE)]));
  });
  const { relay, events } = await openRelay(t, server.port);
  const inits = Array.from({ length: 40 }, () => message(30, sshString("y".repeat(1000))));
  const c = client(
    relay,
    Buffer.concat([Buffer.from("SSH-2.0-Client\r\n"), kexinit(CURVE)]),
    /SSH-2\.0-Server/,
    (s) => s.write(Buffer.concat(inits)),
  );
  assert.equal(await c.ended, "ECONNRESET");
  await eventAfter(events);
  assert.ok(server.got().length < 20_000, `${server.got().length} bytes reached the server`);
  assert.equal(events.length, 1);
  assert.deepEqual(seen(events)[0]?.slice(0, 3), ["blocked", "other-ssh", "l7_relay"]);
  assert.match(String(events[0]?.layer7?.ssh?.ended), /more than \d+ bytes before the host key/);
});

test("a server that closes before its host key: reported, the server's IGNORE never shown", async (t) => {
  const server = await scriptedServer(t, (s, got) => {
    s.write(
      Buffer.concat([
        Buffer.from("SSH-2.0-Server\r\n"),
        kexinit(CURVE),
        ignore("SERVER-SECRET-BEFORE-VERDICT"),
      ]),
    );
    const end = () => (got().includes("\x1e") ? s.end() : setTimeout(end, 20));
    end();
  });
  const { relay, events } = await openRelay(t, server.port);
  const c = client(relay, Buffer.from("SSH-2.0-Client\r\n"), /SSH-2\.0-Server/, (s) =>
    s.write(Buffer.concat([kexinit(CURVE), message(30, sshString(Buffer.alloc(32, 1)))])),
  );
  assert.match(await c.ended, /ECONNRESET|closed/);
  await eventAfter(events);
  assert.doesNotMatch(c.got(), /SERVER-SECRET/);
  assert.match(server.got(), /^SSH-2\.0-Client\r\n/);
  assert.deepEqual(seen(events), [
    ["blocked", "other-ssh", "l7_relay", undefined, "server closed before the host key"],
  ]);
});

test("no host key within the timeout: reported as such", async (t) => {
  const server = await scriptedServer(t, (s) => {
    s.write(Buffer.concat([Buffer.from("SSH-2.0-Server\r\n"), kexinit(CURVE)]));
  });
  const { relay, events } = await openRelay(t, server.port, sshHandlerWith({ timeoutMs: 300 }));
  const c = client(relay, Buffer.concat([Buffer.from("SSH-2.0-Client\r\n"), kexinit(CURVE)]));
  assert.match(await c.ended, /ECONNRESET|closed/);
  await eventAfter(events);
  assert.deepEqual(seen(events), [
    ["blocked", "other-ssh", "l7_relay", undefined, "no host key within 300 ms"],
  ]);
});

test("group exchange with the pinned key: the group reaches the client, then the reply; allowed", async (t) => {
  const server = await scriptedServer(t, (s, got) => {
    // the group (message 31 of group exchange) answers the client's request at once
    s.write(
      Buffer.concat([
        Buffer.from("SSH-2.0-Server\r\n"),
        kexinit(GEX),
        message(31, sshString("GROUP")),
      ]),
    );
    s.on("data", () => {
      if (got().includes("GEX-INIT")) s.write(reply(33));
    });
  });
  const { relay, events } = await openRelay(t, server.port);
  const request = message(34, Buffer.from([0, 0, 8, 0, 0, 0, 16, 0, 0, 0, 32, 0]));
  const c = client(
    relay,
    Buffer.concat([Buffer.from("SSH-2.0-Client\r\n"), kexinit(GEX), request]),
    /GROUP/,
    (s) => s.write(message(32, sshString("GEX-INIT"))),
  );
  const replied = async () => {
    while (!c.got().includes("sig")) await new Promise((r) => setTimeout(r, 20));
  };
  await Promise.race([replied(), c.ended]);
  await eventAfter(events);
  assert.match(c.got(), /GROUP[^]*sig/);
  assert.deepEqual(seen(events), [["allowed", "pinned-bastion", "l7_relay", PIN, undefined]]);
});

test("a server the relay cannot reach: the client reset, reported with why", async (t) => {
  const { relay, events } = await openRelay(t, await freePort());
  const c = client(relay, Buffer.concat([Buffer.from("SSH-2.0-Client\r\n"), kexinit(CURVE)]));
  assert.match(await c.ended, /ECONNRESET|closed/);
  await eventAfter(events);
  assert.equal(events.length, 1);
  assert.deepEqual(seen(events)[0]?.slice(0, 3), ["blocked", "other-ssh", "l7_relay"]);
  assert.match(
    String(events[0]?.layer7?.ssh?.ended),
    /^no connection to the server: .*ECONNREFUSED/,
  );
});

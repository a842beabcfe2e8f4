// The relay's core without the kernel: the protocol told from the first bytes, the SNI of a real
// client's ClientHello, and a relayed connection judged before any byte reaches the server:
// allowed (the server gets the client's bytes), blocked (the client is reset, the server never
// sees a connection), a protocol moat cannot tell (judged without layer7 facts).
import { test } from "node:test";
import assert from "node:assert/strict";
import { createServer, connect, type Server, type Socket } from "node:net";
import { connect as tlsConnect } from "node:tls";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { parsePolicy, type PolicyModel } from "../../../src/config/index.ts";
import type { MoatEvent } from "../../../src/datapath/index.ts";
import { L7Relay, sniff, type UpstreamPurpose } from "../../../src/l7/index.ts";
import { openRealRelay } from "../../helpers/l7-real-relay.ts";

test("the protocol is told from the first bytes; a prefix waits for more", () => {
  const b = (s: string | number[]) => (typeof s === "string" ? Buffer.from(s) : Buffer.from(s));
  assert.equal(sniff(b([0x16, 0x03, 0x01])), "tls");
  assert.equal(sniff(b([0x16])), "more");
  assert.equal(sniff(b("SSH-2.0-OpenSSH_9.6\r\n")), "ssh");
  assert.equal(sniff(b("GET / HTTP/1.1\r\n")), "http");
  assert.equal(sniff(b("PRI * HTTP/2.0\r\n")), "http");
  assert.equal(sniff(b("GE")), "more");
  assert.equal(sniff(b("HELO x\r\n")), "unknown");
  // Go's TLS servers read a first record of any version below 0x1000, and an alert before it
  assert.equal(sniff(b([0x16, 0x01])), "tls");
  assert.equal(sniff(b([0x15, 0x03])), "tls");
  assert.equal(sniff(b([0x16, 0x10])), "unknown");
});

/** A real ClientHello: node:tls (OpenSSL) connecting to a listener that records its bytes. */
async function clientHello(servername: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  const server = createServer((s) => s.on("data", (c: Buffer) => chunks.push(c)));
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as { port: number }).port;
  const c = tlsConnect({ host: "127.0.0.1", port, servername });
  c.on("error", () => {});
  await new Promise((r) => setTimeout(r, 100));
  while (chunks.length === 0) await new Promise((r) => setTimeout(r, 20));
  c.destroy();
  server.close();
  return Buffer.concat(chunks);
}

const POLICY_TEXT = `version: 1
mode: prevent
attach: { cgroup: / }
rules:
  - { name: good, direction: egress, action: allow, log: true, layer7: { tls: { sni: [good.example] } } }
  - { name: other-tls, direction: egress, action: block, layer7: { tls: {} } }
  - { name: others, direction: egress, action: block, mode: detect, layer4: { port: [1-65535] } }
`;
const POLICY = parsePolicy(POLICY_TEXT, "p.yaml");

interface Lab {
  relay: L7Relay;
  upstream: Server;
  received: () => Buffer;
  connections: () => number;
  events: MoatEvent[];
  close(): void;
}

async function lab(
  names: string[],
  policy: PolicyModel | (() => PolicyModel) = POLICY,
): Promise<Lab> {
  let got = Buffer.alloc(0);
  let connections = 0;
  const upstream = createServer((s) => {
    connections++;
    s.on("data", (c: Buffer) => (got = Buffer.concat([got, c])));
  });
  await new Promise<void>((r) => upstream.listen(0, "127.0.0.1", r));
  const port = (upstream.address() as { port: number }).port;
  const { relay, events } = await openRealRelay({
    port,
    policy,
    names: () => names,
    headerTimeoutMs: 300,
  });
  return {
    relay,
    upstream,
    received: () => got,
    connections: () => connections,
    events,
    close() {
      relay.close();
      upstream.close();
    },
  };
}

function toRelay(l: Lab): Socket {
  const a = l.relay.addressFor(4)!;
  return connect({ host: a.ip, port: a.port });
}

const closed = (s: Socket) =>
  new Promise<string>((r) => {
    s.on("error", (e: NodeJS.ErrnoException) => r(e.code ?? e.message));
    s.on("close", () => r("closed"));
  });

test("an allowed SNI resolved by this identity goes upstream, hello first; the event says so", async (t) => {
  const l = await lab(["good.example"]);
  t.after(() => l.close());
  const hello = await clientHello("good.example");
  const s = toRelay(l);
  s.write(hello);
  while (l.received().length < hello.length) await new Promise((r) => setTimeout(r, 20));
  assert.deepEqual(l.received(), hello);
  // the handler reports once the sockets are handed on
  while (l.events.length === 0) await new Promise((r) => setTimeout(r, 20));
  s.destroy();
  assert.equal(l.events.length, 1);
  const e = l.events[0]!;
  assert.deepEqual(
    [e.type, e.rule, e.hook, e.layer7?.tls?.sni, e.remote.names, e.relay?.splice],
    ["allowed", "good", "l7_relay", "good.example", ["good.example"], "copy"],
  );
});

test("a connection open across reloads holds none of the policies it was judged by", async (t) => {
  setFlagsFromString("--expose-gc");
  const gc = runInNewContext("gc") as () => void;
  const reread = () => parsePolicy(POLICY_TEXT, "p.yaml");
  let live = reread();
  const l = await lab(["good.example"], () => live);
  t.after(() => l.close());
  const first = new WeakRef(live);
  const hello = await clientHello("good.example");
  const s = toRelay(l);
  t.after(() => s.destroy());
  s.write(hello);
  while (l.events.length === 0) await new Promise((r) => setTimeout(r, 20));
  // two reloads of the same file: the connection still passes, and stays open
  for (let i = 0; i < 2; i++) {
    live = reread();
    assert.equal(l.relay.rejudge(), 0);
  }
  for (let i = 0; i < 10 && first.deref(); i++) {
    await new Promise((resolve) => setImmediate(resolve));
    gc();
  }
  assert.equal(s.destroyed, false, "the connection is open");
  assert.equal(l.connections(), 1);
  assert.equal(first.deref(), undefined, "the policy it was judged by is garbage");
});

test("the same SNI to an address it was not resolved to is reset before the server sees it", async (t) => {
  const l = await lab(["elsewhere.example"]);
  t.after(() => l.close());
  const s = toRelay(l);
  const end = closed(s);
  s.write(await clientHello("good.example"));
  assert.equal(await end, "ECONNRESET");
  assert.equal(l.connections(), 0);
  assert.deepEqual(
    l.events.map((e) => [e.type, e.rule, e.layer7?.tls?.sni]),
    [["blocked", "other-tls", "good.example"]],
  );
});

const SSH_BY_NAME = parsePolicy(
  `version: 1
mode: prevent
defaults: { ingress: allow, egress: allow }
attach: { cgroup: / }
rules:
  - { name: git-host, direction: egress, action: allow, layer3: { remote: [git.example] }, layer7: { ssh: {} } }
  - { name: other-ssh, direction: egress, action: block, layer7: { ssh: {} } }
`,
  "ssh.yaml",
);

test("an SSH client silent until the server speaks, by address: reset before the server is asked", async (t) => {
  // a client that waits for the server's banner (ssh-keyscan, or an ssh slow to start) is taken
  // for SSH after a moment; that must not make the relay forget the only rule that could let it
  // through needs a name this identity did not resolve
  const l = await lab([], SSH_BY_NAME);
  t.after(() => l.close());
  const s = toRelay(l);
  assert.equal(await closed(s), "ECONNRESET");
  assert.equal(l.connections(), 0);
  assert.deepEqual(
    l.events.map((e) => [e.type, e.rule, e.layer7?.ssh?.host_key]),
    [["blocked", "other-ssh", undefined]],
  );
});

test("a protocol moat cannot tell is judged without layer7 facts (here: detected, forwarded)", async (t) => {
  const l = await lab([]);
  t.after(() => l.close());
  const s = toRelay(l);
  s.write("HELO moat.test\r\n");
  while (l.received().length === 0) await new Promise((r) => setTimeout(r, 20));
  assert.equal(l.received().toString(), "HELO moat.test\r\n");
  s.destroy();
  assert.deepEqual(
    l.events.map((e) => [e.type, e.rule, e.layer7]),
    [["detected", "others", {}]],
  );
  assert.equal(l.relay.stats.sniffed.unknown, 1);
});

test("an upstream carries out the latest judgement that forwards; one judged blocked opens nothing", async (t) => {
  const purposes: UpstreamPurpose[] = [];
  const outcomes: string[] = [];
  const owner = { pid: 4242, uid: 1000, cgroupId: 7n, comm: "curl" };
  const relay = await L7Relay.open({
    original: () => ({
      original: { ip: "127.0.0.1", port: 9 },
      protocol: "tcp",
      redirect: 0,
      generation: 1,
      target: { ip: "127.0.0.1", port: 1 },
      owner,
    }),
    process: () => ({ pid: 4242, name: "curl" }) as never,
    names: () => ["good.example"],
    policy: () => POLICY,
    generation: () => 1,
    report: () => {},
    log: () => {},
    connectUpstream: (_to, purpose) => {
      purposes.push(purpose);
      return Promise.reject(new Error("not connecting in this test"));
    },
    handlers: {
      tls: async (ctx) => {
        const tryConnect = async (probe?: "probe") => {
          await ctx.connectUpstream(probe).then(
            () => outcomes.push("opened"),
            (e: Error) => outcomes.push(e.message),
          );
        };
        ctx.judge({ tls: { sni: "bad.example" } }); // blocked
        await tryConnect();
        ctx.judge({ tls: { sni: "good.example" } }); // allowed
        ctx.judge({ tls: { sni: "bad.example" } });
        await tryConnect("probe");
        await tryConnect();
        ctx.client.destroy();
      },
    },
  });
  t.after(() => relay.close());
  const s = toRelay({ relay } as Lab);
  const end = closed(s);
  s.write(Buffer.from([0x16, 0x03, 0x01, 0x00, 0x05]));
  await end;
  while (outcomes.length < 3) await new Promise((r) => setTimeout(r, 20));
  assert.match(outcomes[0]!, /nothing lets through/);
  assert.deepEqual(
    purposes.map((p) => [p.rule, p.verdict, p.probe, p.owner?.pid ?? null]),
    [
      ["good", "allowed", true, null],
      ["good", "allowed", false, 4242],
    ],
  );
});

const TWO_TLS_RULES = parsePolicy(
  `version: 1
mode: prevent
attach: { cgroup: / }
rules:
  - { name: h2-hellos, direction: egress, action: allow, log: true, layer7: { tls: { alpn: [h2] } } }
  - { name: other-tls, direction: egress, action: allow, log: true, layer7: { tls: {} } }
`,
  "two.yaml",
);

test("a ClientHello moat cannot read: its event and its upstream name the same rule", async (t) => {
  // judged as if the hello showed nothing (other-tls) and as if it might show anything (h2-hellos):
  // both forward, and the connection goes as one of them, the one its event names
  const purposes: UpstreamPurpose[] = [];
  const server = createServer((s) => s.on("error", () => {}));
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as { port: number }).port;
  const { relay, events } = await openRealRelay({
    port,
    policy: TWO_TLS_RULES,
    connectUpstream: (to, purpose) => {
      purposes.push(purpose);
      return new Promise((resolve, reject) => {
        const u = connect(to.port, to.ip, () => resolve(u));
        u.once("error", reject);
      });
    },
  });
  t.after(() => {
    relay.close();
    server.close();
  });
  const s = toRelay({ relay } as Lab);
  t.after(() => s.destroy());
  s.on("error", () => {});
  // a handshake record whose ClientHello is cut short: no hello moat can read
  s.write(Buffer.from([22, 3, 1, 0, 6, 1, 0, 0, 2, 3, 3]));
  while (events.length === 0) await new Promise((r) => setTimeout(r, 20));
  assert.deepEqual(
    events.map((e) => [e.type, e.rule]),
    [["allowed", "other-tls"]],
  );
  assert.deepEqual(
    purposes.map((p) => [p.rule, p.verdict, p.probe]),
    [["other-tls", "allowed", false]],
  );
});

test("before any judgement (an SSH server's host key), an upstream carries what may still forward", async (t) => {
  const purposes: UpstreamPurpose[] = [];
  const relay = await L7Relay.open({
    original: () => ({
      original: { ip: "127.0.0.1", port: 9 },
      protocol: "tcp",
      redirect: 0,
      generation: 1,
      target: { ip: "127.0.0.1", port: 1 },
      owner: null,
    }),
    process: () => ({ pid: 1, name: "ssh" }) as never,
    names: () => [],
    policy: () => POLICY,
    generation: () => 1,
    report: () => {},
    log: () => {},
    connectUpstream: (_to, purpose) => {
      purposes.push(purpose);
      return Promise.reject(new Error("not connecting in this test"));
    },
    handlers: {
      ssh: async (ctx) => {
        await ctx.connectUpstream().catch(() => {});
        ctx.client.destroy();
      },
    },
  });
  t.after(() => relay.close());
  const s = toRelay({ relay } as Lab);
  const end = closed(s);
  s.write("SSH-2.0-OpenSSH_9.6\r\n");
  await end;
  while (purposes.length < 1) await new Promise((r) => setTimeout(r, 20));
  assert.deepEqual(
    purposes.map((p) => [p.rule, p.verdict, p.probe]),
    [["others", "detected", false]],
  );
});

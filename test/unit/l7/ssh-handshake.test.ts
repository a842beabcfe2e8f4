// The SSH parser on bytes a real `ssh` and a real sshd (openssh-server) exchange, captured in the
// test: the server's version and host key fingerprint (as `ssh-keygen -l` prints it) for each
// key exchange family (curve25519, ECDH, Diffie-Hellman group, group exchange, sntrup761
// hybrid), host certificates, and handcrafted mlkem768x25519 and malformed streams. The bytes
// the parser lets through stop right before the packet carrying the key.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { SshHandshake, SshProtocolError } from "../../../src/l7/ssh/index.ts";
import {
  captureHandshake,
  makeKey,
  signHostKey,
  startSshd,
  tempDir,
  type Capture,
  type KeyPair,
  type Sshd,
} from "../../helpers/sshd.ts";
import { freePort } from "../../helpers/ports.ts";

let tmp: ReturnType<typeof tempDir>;
let sshd: Sshd;
let ed25519: KeyPair;
let rsa: KeyPair;
let ecdsa: KeyPair;

before(async () => {
  tmp = tempDir("parse");
  ed25519 = makeKey(tmp.dir, "host-ed25519", "ed25519");
  rsa = makeKey(tmp.dir, "host-rsa", "rsa");
  ecdsa = makeKey(tmp.dir, "host-ecdsa", "ecdsa");
  const ca = makeKey(tmp.dir, "ca", "ed25519");
  const cert = signHostKey(ca, ed25519);
  sshd = await startSshd({
    dir: tmp.dir,
    port: await freePort(),
    hostKeys: [ed25519, rsa, ecdsa],
    config: [`HostCertificate ${cert}`],
  });
});

after(async () => {
  await sshd?.close();
  tmp?.remove();
});

/** The parser fed the capture: all the client's bytes, then the server's in `step`-byte pieces. */
function parse(c: Capture, step = c.server.length): SshHandshake {
  const hs = new SshHandshake();
  hs.fromClient(c.client);
  for (let i = 0; i < c.server.length && !hs.result; i += step)
    hs.fromServer(c.server.subarray(i, i + step));
  return hs;
}

/** The message number of the packet at `offset` of the server's stream. */
const typeAt = (c: Capture, offset: number) => c.server[offset + 5];

const cases: { name: string; args: string[]; key: () => KeyPair; reply: number }[] = [
  { name: "curve25519-sha256", args: [], key: () => ed25519, reply: 31 },
  { name: "sntrup761x25519-sha512@openssh.com", args: [], key: () => ed25519, reply: 31 },
  { name: "ecdh-sha2-nistp256", args: [], key: () => ecdsa, reply: 31 },
  { name: "diffie-hellman-group14-sha256", args: [], key: () => rsa, reply: 31 },
  { name: "diffie-hellman-group-exchange-sha256", args: [], key: () => ed25519, reply: 33 },
];

for (const c of cases) {
  test(`${c.name}: the host key of message ${c.reply} and the version`, async () => {
    const key = c.key();
    const alg =
      key === rsa ? "rsa-sha2-256" : key === ecdsa ? "ecdsa-sha2-nistp256" : "ssh-ed25519";
    const cap = await captureHandshake(sshd.port, [
      "-o",
      `KexAlgorithms=${c.name}`,
      "-o",
      `HostKeyAlgorithms=${alg}`,
    ]);
    for (const step of [cap.server.length, 7]) {
      const hs = parse(cap, step);
      const seen = hs.result;
      assert.ok(seen, `no result (step ${step})`);
      assert.match(seen.version, /^SSH-2\.0-OpenSSH_9/);
      assert.equal(seen.kex, c.name);
      assert.equal(seen.hostKey?.fingerprint, key.fingerprint);
      assert.equal(seen.hostKey?.certificate, undefined);
      // what may reach the client stops right at the reply
      assert.equal(typeAt(cap, hs.forwardable), c.reply);
    }
  });
}

test("a host certificate: the fingerprint of the key it certifies", async () => {
  const cap = await captureHandshake(sshd.port, [
    "-o",
    "HostKeyAlgorithms=ssh-ed25519-cert-v01@openssh.com",
  ]);
  const seen = parse(cap).result;
  assert.equal(seen?.hostKey?.fingerprint, ed25519.fingerprint);
  assert.equal(seen?.hostKey?.certificate, "ssh-ed25519-cert-v01@openssh.com");
  assert.equal(seen?.hostKey?.type, "ssh-ed25519");
});

// --- handcrafted streams ---------------------------------------------------------------------

function packet(payload: Buffer): Buffer {
  const padding = 8 - ((payload.length + 5) % 8) + 4;
  const head = Buffer.alloc(5);
  head.writeUInt32BE(payload.length + padding + 1);
  head[4] = padding;
  return Buffer.concat([head, payload, Buffer.alloc(padding)]);
}

function str(s: string | Buffer): Buffer {
  const b = typeof s === "string" ? Buffer.from(s) : s;
  const len = Buffer.alloc(4);
  len.writeUInt32BE(b.length);
  return Buffer.concat([len, b]);
}

function kexinit(kex: string): Buffer {
  const lists = [
    kex,
    "ssh-ed25519",
    "aes128-ctr",
    "aes128-ctr",
    "hmac-sha2-256",
    "hmac-sha2-256",
    "none",
    "none",
    "",
    "",
  ];
  return packet(
    Buffer.concat([
      Buffer.from([20]),
      Buffer.alloc(16),
      ...lists.map((l) => str(l)),
      Buffer.alloc(5),
    ]),
  );
}

test("mlkem768x25519-sha256 (handcrafted): message 31 carries the key", async () => {
  const cap = await captureHandshake(sshd.port, [
    "-o",
    "KexAlgorithms=curve25519-sha256",
    "-o",
    "HostKeyAlgorithms=ssh-ed25519",
  ]);
  const real = parse(cap);
  const replyAt = real.forwardable;
  const reply = cap.server.subarray(replyAt, replyAt + 4 + cap.server.readUInt32BE(replyAt));
  const hs = new SshHandshake();
  hs.fromClient(
    Buffer.concat([Buffer.from("SSH-2.0-test\r\n"), kexinit("mlkem768x25519-sha256,ext-info-c")]),
  );
  hs.fromServer(
    Buffer.concat([Buffer.from("SSH-2.0-OpenSSH_9.9\r\n"), kexinit("mlkem768x25519-sha256")]),
  );
  assert.equal(hs.result === null, true);
  hs.fromServer(reply);
  assert.equal(hs.result?.kex, "mlkem768x25519-sha256");
  assert.equal(hs.result?.hostKey?.fingerprint, ed25519.fingerprint);
  assert.equal(hs.result?.version, "SSH-2.0-OpenSSH_9.9");
});

test("lines before the server's version are skipped; a reply before the client's KEXINIT waits", () => {
  const hs = new SshHandshake();
  const server = Buffer.concat([
    Buffer.from("hello there\r\nSSH-2.0-Other_1.0\r\n"),
    kexinit("curve25519-sha256"),
    packet(Buffer.concat([Buffer.from([31]), str(str("ssh-ed25519")), str("x")])),
  ]);
  hs.fromClient(Buffer.from("SSH-2.0-test\r\n"));
  hs.fromServer(server);
  assert.equal(hs.result === null, true);
  assert.equal(server[hs.forwardable + 5], 31, "the reply is held");
  hs.fromClient(kexinit("curve25519-sha256"));
  assert.equal(hs.result?.version, "SSH-2.0-Other_1.0");
  assert.match(hs.result?.hostKey?.fingerprint ?? "", /^SHA256:[A-Za-z0-9+/]{43}$/);
});

test("a key exchange moat does not read: the version alone, nothing more forwarded", () => {
  const hs = new SshHandshake();
  hs.fromClient(
    Buffer.concat([Buffer.from("SSH-2.0-test\r\n"), kexinit("gss-curve25519-sha256-x")]),
  );
  const server = Buffer.concat([Buffer.from("SSH-2.0-S\r\n"), kexinit("gss-curve25519-sha256-x")]);
  hs.fromServer(server);
  assert.deepEqual(hs.result, {
    version: "SSH-2.0-S",
    kex: "gss-curve25519-sha256-x",
    hostKey: null,
  });
  assert.equal(hs.forwardable, server.length);
});

test("bad input: not SSH, SSH 1, a huge packet, too many bytes", () => {
  const bad = (server: Buffer, max?: number) => {
    const hs = new SshHandshake(max);
    hs.fromClient(Buffer.from("SSH-2.0-test\r\n"));
    assert.throws(() => hs.fromServer(server), SshProtocolError);
  };
  bad(Buffer.from("HTTP/1.1 200 OK\r\n" + "x".repeat(300)));
  bad(Buffer.from("SSH-1.5-old\r\n"));
  const huge = Buffer.alloc(9);
  huge.writeUInt32BE(1_000_000);
  bad(Buffer.concat([Buffer.from("SSH-2.0-S\r\n"), huge]));
  bad(Buffer.alloc(2000, 0x41), 1024);
});

test("the client's first line is its version (only a server may send lines before it)", () => {
  const client = (bytes: string) => new SshHandshake().fromClient(Buffer.from(bytes, "latin1"));
  client("SSH-2.0-OpenSSH_9.9\r\n");
  client("SSH-1.99-Old\r\n");
  client("SSH-2.0-Open"); // a version line not yet whole
  client("SS");
  client("");
  for (const bad of ["POST /admin HTTP/1.1\r\n", "PO", "hello\r\nSSH-2.0-x\r\n", "\r\n"])
    assert.throws(() => client(bad), SshProtocolError, JSON.stringify(bad));
});

// The daemon's stdout (the journal under moat.service): every line it logs, whatever its source
// (a peer's host-key type in an error, a local client's version line), is one line with no
// control or bidi character; its event lines are printed once escaped, not twice; and with
// --json, event objects are ASCII, C1 and bidi characters written \uXXXX as the CLI's other
// --json outputs write them.
import { test } from "node:test";
import assert from "node:assert/strict";
import { daemonLog } from "../../src/cli/commands/daemon-log.ts";
import { stdoutSink } from "../../src/observe/stdout-sink.ts";
import { formatEventLine } from "../../src/datapath/event.ts";
import { hostKeyOf } from "../../src/l7/ssh/host-key.ts";
import { SshStream } from "../../src/l7/ssh/wire.ts";
import { fakeEvent } from "../helpers/events.ts";

const FORGED = "2026-01-01T00:00:00.000Z ALLOWED egress tcp 10.0.0.1:1 -> 10.0.0.2:22 by rule ok";
/** A server's host-key type, any bytes: a forged event line between a newline and ESC [2K. */
const HOSTILE_TYPE = `x\n${FORGED}\x1b[2K-cert-v01@openssh.com`;

/** Terminal and line controls, C1 and the bidi/zero-width characters. */
// eslint-disable-next-line no-control-regex -- it looks for control characters
const UNSAFE = /[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2066-\u2069]/;

const sshString = (b: Buffer) => {
  const n = Buffer.alloc(4);
  n.writeUInt32BE(b.length);
  return Buffer.concat([n, b]);
};

function hostKeyError(type: string): string {
  const blob = Buffer.concat([sshString(Buffer.from(type, "latin1")), sshString(Buffer.alloc(8))]);
  try {
    hostKeyOf(blob);
  } catch (err) {
    return (err as Error).message;
  }
  throw new Error("hostKeyOf took the hostile certificate type");
}

function clientVersionError(bytes: string): string {
  const s = new SshStream(64 * 1024, true);
  s.push(Buffer.from(bytes, "latin1"));
  try {
    s.next();
  } catch (err) {
    return (err as Error).message;
  }
  throw new Error("the SSH-1.5 version line was taken");
}

/** What `moat run` writes to stdout for `line`s the daemon logs. */
function runOutput(...lines: string[]): string[] {
  const out: string[] = [];
  const log = daemonLog((l) => out.push(l));
  for (const l of lines) log(l);
  return out;
}

test("a log line holding a newline and ESC is one escaped line on stdout", () => {
  const said = `l7 relay: ssh to 10.0.0.2:22: server: host certificate type ${HOSTILE_TYPE} unknown`;
  const out = runOutput(said).join("\n").split("\n");
  assert.equal(out.length, 1, `more than one line: ${JSON.stringify(out)}`);
  assert.doesNotMatch(out[0] ?? "", UNSAFE);
  assert.match(out[0] ?? "", /^l7 relay: ssh to 10\.0\.0\.2:22: server: /);
  assert.ok(!(out[0] ?? "").includes(`\n${FORGED}`));
});

test("CR, BEL, C1 and bidi characters in a log line are escaped", () => {
  const [line] = runOutput("l7 relay: a\rFAKE\x07 \x9b31m \u202etxt.exe \u2028x");
  assert.equal(line, "l7 relay: a\\rFAKE\\x07 \\x9b31m \\u202etxt.exe \\u2028x");
});

test("the stdout sink's event lines reach stdout escaped once", () => {
  const out: string[] = [];
  const sink = stdoutSink(
    daemonLog((l) => out.push(l)),
    false,
  );
  const ev = fakeEvent({
    time: "2026-12-06T10:00:00.000Z",
    process: { pid: 7, name: "a\x1bb\\c", path: "/x", user: 0, cgroup: "/", container: null },
  });
  sink.write([ev]);
  sink.close();
  assert.deepEqual(out, [formatEventLine(ev)]);
  assert.match(out[0] ?? "", / \(a\\x1bb\\\\c pid 7\)$/);
});

test("moat run --json: C1 and bidi characters are \\uXXXX; the object is the event", () => {
  const out: string[] = [];
  const sink = stdoutSink(
    daemonLog((l) => out.push(l)),
    true,
  );
  const ev = fakeEvent({
    interface: "ab\u202ecd",
    process: { pid: 7, name: "q\u009b31mRED", path: "/x", user: 0, cgroup: "/", container: null },
  });
  sink.write([ev]);
  sink.close();
  assert.equal(out.length, 1);
  assert.doesNotMatch(out[0] ?? "", UNSAFE);
  assert.match(out[0] ?? "", /"name":"q\\u009b31mRED"/);
  assert.match(out[0] ?? "", /"interface":"ab\\u202ecd"/);
  assert.deepEqual(JSON.parse(out[0] ?? ""), JSON.parse(JSON.stringify(ev)));
});

test("--json: a log line cannot be read as an event object", () => {
  const out = runOutput(`l7 relay: server: x\n{"type":"allowed","rule":"ok"}`);
  assert.equal(out.join("\n").split("\n").length, 1);
});

test("the SSH relay's messages escape and cut what a peer sent", () => {
  const key = hostKeyError(HOSTILE_TYPE);
  assert.doesNotMatch(key, UNSAFE);
  assert.match(key, /^host certificate type /);
  const long = hostKeyError(`${"z".repeat(5000)}-cert-v01@openssh.com`);
  assert.ok(long.length < 200, `${long.length} characters`);
  const version = clientVersionError("SSH-1.5-\x1b[2J\x1b]0;owned\x07\rFAKE LINE\r\n");
  assert.doesNotMatch(version, UNSAFE);
  assert.match(version, /^not SSH version 2: /);
});

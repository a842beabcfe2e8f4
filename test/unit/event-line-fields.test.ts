// An event's line, as the daemon's output, the audit log and `moat events` print it: a field
// anyone outside can choose (an SSH server's version, an HTTP host or path, an SNI, a DNS name, a
// process name, an executable path) is escaped and, when it holds a space or a quote, quoted, so
// it cannot imitate the line's own words ("on eth0 by rule ...") or add a line. Ordinary values
// print as they always did.
import { test } from "node:test";
import assert from "node:assert/strict";
import { formatEventLine } from "../../src/datapath/event.ts";
import type { ProcessFacts } from "../../src/attribution/types.ts";
import { foldedLines } from "../../src/observe/repeat-summary.ts";
import { fakeEvent } from "../helpers/events.ts";

const TIME = "2026-12-06T10:00:00.000Z";

const proc = (name: string, path = "/usr/bin/ssh"): ProcessFacts => ({
  pid: 31449,
  name,
  path,
  user: 0,
  cgroup: "/user.slice",
  container: null,
});

const sshTo = (version: string, name = "python3") =>
  fakeEvent({
    time: TIME,
    type: "allowed",
    verdict: "allowed",
    direction: "egress",
    rule: "ssh-ver",
    local: { ip: "10.0.0.1", port: 40000 },
    remote: { ip: "10.0.0.2", port: 22 },
    process: proc(name),
    layer7: { ssh: { version } },
    hook: "l7_relay",
  });

/** Where " by rule " first appears: what a reader takes for the rule. */
const firstRule = (line: string) => /(?<!")(?: by rule )(\S+)/.exec(line)?.[1];

test("an SSH version with spaces cannot name another rule before the real one", () => {
  const line = formatEventLine(sshTo("SSH-2.0-evil on eth0 by rule allow-all (sshd pid 1)"));
  assert.equal(
    line,
    `${TIME} ALLOWED egress tcp 10.0.0.1:40000 -> 10.0.0.2:22 SSH SSH-2.0-evil "on eth0 by rule allow-all (sshd pid 1)" on eth0 by rule ssh-ver (python3 pid 31449)`,
  );
  assert.equal(firstRule(line.replace(/"(?:[^"\\]|\\.)*"/g, '""')), "ssh-ver");
});

test("an ordinary SSH version, with its comment, prints as before", () => {
  assert.equal(
    formatEventLine(sshTo("SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u10", "ssh")),
    `${TIME} ALLOWED egress tcp 10.0.0.1:40000 -> 10.0.0.2:22 SSH SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u10 on eth0 by rule ssh-ver (ssh pid 31449)`,
  );
});

test("a process name with a space, a quote or a control character", () => {
  const ev = (name: string) => formatEventLine(sshTo("SSH-2.0-x", name));
  assert.match(ev("Web Content"), /\("Web Content" pid 31449\)$/);
  assert.match(ev('a"b'), /\("a\\"b" pid 31449\)$/);
  // escaped once: \x1b, not \\x1b
  assert.match(ev("x\x1b[2Jy"), / \(x\\x1b\[2Jy pid 31449\)$/);
  assert.match(ev("back\\slash"), / \(back\\\\slash pid 31449\)$/);
  assert.match(ev("nb\u00a0sp"), / \("nb\u00a0sp" pid 31449\)$/);
});

test("HTTP host and path, TLS SNI and DNS names with spaces are quoted", () => {
  const web = (layer7: NonNullable<Parameters<typeof fakeEvent>[0]>["layer7"]) =>
    formatEventLine(fakeEvent({ time: TIME, direction: "egress", layer7, rule: "web" }));
  assert.match(
    web({ http: { method: "GET", host: "a.test", path: "/x by rule ok" } }),
    / HTTP GET "a\.test\/x by rule ok" on eth0 by rule web$/,
  );
  assert.match(
    web({ http: { method: "GET", host: "a.test", path: "/x" } }),
    / HTTP GET a\.test\/x on eth0 by rule web$/,
  );
  assert.match(web({ tls: { sni: "a b" } }), / TLS "a b" on eth0 by rule web$/);
  assert.match(web({ dns: { name: "x on lo by rule ok." } }), / DNS query "x on lo by rule ok\."/);
  const named = formatEventLine(
    fakeEvent({
      time: TIME,
      direction: "egress",
      remote: { ip: "192.0.2.1", port: 443, names: ["ok.test", "x (1.1.1.1)"] },
    }),
  );
  assert.match(named, / -> ok\.test, "x \(1\.1\.1\.1\)" \(192\.0\.2\.1\):443 on eth0/);
});

test("an executable path with spaces in an EXE_CHANGED line", () => {
  const line = formatEventLine(
    fakeEvent({
      time: TIME,
      type: "exe_changed",
      process: proc("curl", "/opt/a b/curl"),
      executable: {
        path: "/opt/a b/curl",
        oldHash: "ab",
        newHash: "cd",
        identity: { exe: "/opt/a b/curl", user: 0, cgroup: "/x y", container: "" },
      } as never,
    }),
  );
  assert.match(
    line,
    /EXE_CHANGED "\/opt\/a b\/curl" sha256 ab -> cd \(curl pid 31449, user 0, cgroup "\/x y"\)$/,
  );
});

test("the folded output (stdout, audit log) prints the formatter's line as it is", () => {
  const out: string[] = [];
  const lines = foldedLines({ emit: (l) => out.push(l) });
  const ev = sshTo('SSH-2.0-a\x1b[2K "b"', "x\ny");
  lines.write([ev]);
  lines.close();
  assert.deepEqual(out, [formatEventLine(ev)]);
  // eslint-disable-next-line no-control-regex -- it looks for control characters
  assert.doesNotMatch(out[0] ?? "", /[\x00-\x1f]/);
  assert.match(out[0] ?? "", / SSH SSH-2\.0-a\\x1b\[2K "\\"b\\"" on eth0 .* \(x\\ny pid 31449\)$/);
});

// Scrubbing seen from the peer namespace: the SYN-ACK of moat's host carries the clamped MSS and
// the raised TTL / hop limit (tcpdump on the peer), and an nmap xmas scan of a closed port gets no reset once moat drops the
// invalid flags (prevent), while detect lets the reset through and counts the scan.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { startMoatLab, type MoatLab } from "../helpers/moat-lab.ts";
import type { Lab } from "../helpers/netns.ts";
import { http } from "../helpers/api-client.ts";
import { guardedInterface } from "../helpers/ingress-mode.ts";

function policy(lab: Lab, mode: "detect" | "prevent"): string {
  return `version: 1
mode: ${mode}
defaults: { ingress: allow, egress: allow }
attach: { interfaces: [${guardedInterface(lab.ifB)}] }
scrub: { mss: { ipv4: 1200, ipv6: 1100 }, min_ttl: 200 }
`;
}

/**
 * The MSS options and TTLs / hop limits tcpdump on a shows in the SYN-ACKs from `from` while
 * `traffic` runs.
 */
async function synAck(
  lab: MoatLab,
  from: string,
  traffic: () => void,
): Promise<{ mss: string[]; ttl: string[] }> {
  const dump = spawn(
    "ip",
    [
      "netns",
      "exec",
      lab.a,
      "tcpdump",
      "-l",
      "-n",
      "-v",
      "-i",
      lab.ifA,
      "-c",
      "1",
      // SYN set (ipv6: the tcp flags byte after a 40-byte header, no extension headers here)
      from.includes(":")
        ? `src host ${from} and tcp and ip6[40+13] & 0x02 != 0`
        : `src host ${from} and tcp[tcpflags] & tcp-syn != 0`,
    ],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  let out = "";
  dump.stdout.on("data", (c: Buffer) => (out += c.toString()));
  // "close", not "exit": the process may end before its last output is read from the pipe
  const exited = new Promise<void>((r) => dump.on("close", () => r()));
  await new Promise<void>((resolve) => {
    dump.stderr.on("data", (c: Buffer) => {
      if (c.toString().includes("listening on")) resolve();
    });
  });
  try {
    traffic();
    await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
  } finally {
    dump.kill();
  }
  return {
    mss: [...out.matchAll(/mss (\d+)/g)].map((m) => m[1] ?? ""),
    ttl: [...out.matchAll(/(?:ttl|hlim) (\d+)/g)].map((m) => m[1] ?? ""),
  };
}

/** nmap's xmas scan (FIN, PSH, URG) of one port from a: its output. */
function xmasScan(lab: MoatLab, port: number): string {
  const r = spawnSync(
    "ip",
    [
      "netns",
      "exec",
      lab.a,
      "nmap",
      "-sX",
      "-Pn",
      "-n",
      "--max-retries",
      "1",
      "-p",
      String(port),
      lab.v4.b,
    ],
    { encoding: "utf8", timeout: 30_000 },
  );
  return r.stdout;
}

async function counter(lab: MoatLab, name: string): Promise<number> {
  const reply = await http({ socketPath: lab.apiSocket }, "GET", "/metrics");
  const line = reply.body
    .split("\n")
    .find((l) => l.startsWith(`moat_datapath_packets_total{counter="${name}"}`));
  assert.ok(line, `${name} in /metrics`);
  return Number(line.split(" ")[1]);
}

test("scrub: the peer sees moat's host answer with the clamped MSS and TTL 200, v4 and v6", async (t) => {
  const lab = await startMoatLab(t.name, (l) => policy(l, "prevent"));
  try {
    const v4 = await synAck(lab, lab.v4.b, () =>
      assert.equal(lab.curl(`http://${lab.v4.b}/`).status, 0),
    );
    assert.deepEqual(v4, { mss: ["1200"], ttl: ["200"] });
    const v6 = await synAck(lab, lab.v6.b, () =>
      assert.equal(lab.curl(`http://[${lab.v6.b}]/`).status, 0),
    );
    assert.deepEqual(v6, { mss: ["1100"], ttl: ["200"] });
    assert.ok((await counter(lab, "mssClamped")) >= 4, "SYNs in, SYN-ACKs out");
    assert.ok((await counter(lab, "ttlRaised")) >= 4, "every packet under TTL 200");
  } finally {
    await lab.close();
  }
});

test("invalid TCP flags: an xmas scan gets no answer in prevent, is counted in detect", async (t) => {
  const lab = await startMoatLab(t.name, (l) => policy(l, "prevent"));
  try {
    // a closed port answers an xmas probe with a reset; moat drops the probe first
    const states = lab.scan([9999]);
    assert.equal(states.get(9999), "closed", "a SYN scan still sees the closed port");
    const xmas = xmasScan(lab, 9999);
    assert.match(xmas, /9999\/tcp\s+open\|filtered/, xmas);
    assert.ok((await counter(lab, "tcpFlagsDropped")) >= 1);

    lab.writePolicy(policy(lab, "detect"));
    await lab.daemon.waitFor(/^policy .* applied: generation 2, .*mode detect/);
    const again = xmasScan(lab, 9999);
    assert.match(again, /9999\/tcp\s+closed/, again);
    assert.ok((await counter(lab, "tcpFlagsDetected")) >= 1);
  } finally {
    await lab.close();
  }
});

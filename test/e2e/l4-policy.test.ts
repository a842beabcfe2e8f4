// moat enforcing an L3/L4 policy on a namespace's interface, seen from a peer namespace with real
// clients: nmap reports exactly the ports the policy opens (prevent), detect mode lets the same
// traffic through and reports it, reloads keep allowed transfers alive, bad files are refused.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { statSync } from "node:fs";
import { startMoatLab } from "../helpers/moat-lab.ts";
import type { Lab } from "../helpers/netns.ts";
import { guardedInterface } from "../helpers/ingress-mode.ts";

function policy(lab: Lab & { auditPath: string }, mode: "detect" | "prevent", extra = ""): string {
  return `version: 1
mode: ${mode}
defaults: { ingress: block, egress: allow }
attach: { interfaces: [${guardedInterface(lab.ifB)}] }
logging: { audit: { path: ${lab.auditPath} } }
rules:
  - name: ssh-from-lab
    direction: ingress
    action: allow
    log: true
    layer3: { remote: [${lab.v4.a}/32, "${lab.v6.a}"] }
    layer4: { protocol: tcp, port: [22] }
  - name: web
    direction: ingress
    action: allow
    layer4: { protocol: tcp, port: [80] }
  - name: ping
    direction: ingress
    action: allow
    layer4: { protocol: icmp, icmp: { type: 8 } }
  - name: icmpv6
    direction: ingress
    action: allow
    layer4: { protocol: icmpv6 }
  - name: dns
    direction: ingress
    action: allow
    layer4: { protocol: udp, port: [53] }
${extra}`;
}

const PORTS = [22, 80, 443, 8080, 9999];

function udpEcho(lab: Lab, addr: string, port: number): string {
  const r = spawnSync("ip", ["netns", "exec", lab.a, "nc", "-u", "-w", "1", addr, String(port)], {
    input: "hello\n",
    encoding: "utf8",
    timeout: 10_000,
  });
  return r.stdout;
}

test("prevent mode: nmap sees exactly the open ports, blocks are audited", async (t) => {
  const lab = await startMoatLab(t.name, (l) => policy(l, "prevent"));
  try {
    const states = lab.scan(PORTS);
    assert.deepEqual(Object.fromEntries(states), {
      22: "open",
      80: "open",
      443: "filtered",
      8080: "filtered",
      9999: "filtered",
    });
    assert.equal(lab.scan([22, 80, 443], lab.v6.b).get(443), "filtered", "v6 443 filtered");
    assert.equal(lab.scan([22, 80, 443], lab.v6.b).get(22), "open", "v6 22 open");

    assert.deepEqual(lab.curl(`http://${lab.v4.b}/`), { status: 0, body: "port 80\n" });
    assert.equal(lab.curl(`http://${lab.v4.b}:8080/`).status, 28, "curl to 8080 times out");
    assert.equal(lab.inA("ping", ["-c", "2", "-i", "0.2", "-w", "2", lab.v4.b]), 0, "ping allowed");
    assert.equal(lab.inA("ping", ["-6", "-c", "2", "-i", "0.2", "-w", "2", lab.v6.b]), 0, "ping6");
    assert.equal(udpEcho(lab, lab.v4.b, 53), "hello\n", "udp 53 allowed, reply passes");
    assert.equal(udpEcho(lab, lab.v4.b, 5353), "", "udp 5353 blocked");

    // egress from b is allowed by default, and its replies come back in through XDP
    assert.equal(lab.inB("ping", ["-c", "1", "-w", "2", lab.v4.a]), 0, "egress ping and its reply");

    await lab.daemon.waitFor(/BLOCKED ingress tcp .* -> .*:8080 on /);
    await lab.auditHas(/BLOCKED ingress tcp .* -> .*:8080 on /);
    const st = statSync(lab.auditPath);
    assert.equal(st.mode & 0o777, 0o600, "audit log is 0600");
    assert.equal(st.uid, 0, "audit log is owned by root");
    const audit = lab.audit();
    assert.match(
      audit,
      new RegExp(
        `BLOCKED ingress tcp ${lab.v4.a}:\\d+ -> ${lab.v4.b}:443 on ${lab.ifB} by rule default`,
      ),
    );
    assert.match(
      audit,
      new RegExp(
        `ALLOWED ingress tcp ${lab.v4.a}:\\d+ -> ${lab.v4.b}:22 on ${lab.ifB} by rule ssh-from-lab`,
      ),
    );
    assert.match(
      audit,
      new RegExp(
        `BLOCKED ingress udp ${lab.v4.a}:\\d+ -> ${lab.v4.b}:5353 on ${lab.ifB} by rule default`,
      ),
    );
    assert.doesNotMatch(audit, /DETECTED/);
    assert.doesNotMatch(audit, /:80 on .* by rule web/, "allowed without log: not reported");
  } finally {
    await lab.close();
  }
});

test("detect mode: the same traffic passes and is reported as detected", async (t) => {
  const lab = await startMoatLab(t.name, (l) => policy(l, "detect"));
  try {
    assert.deepEqual(Object.fromEntries(lab.scan(PORTS)), {
      22: "open",
      80: "open",
      443: "open",
      8080: "open",
      9999: "closed",
    });
    assert.deepEqual(lab.curl(`http://${lab.v4.b}:8080/`), { status: 0, body: "port 8080\n" });
    assert.equal(udpEcho(lab, lab.v4.b, 5353), "hello\n", "udp 5353 passes in detect mode");
    await lab.daemon.waitFor(/DETECTED ingress udp .* -> .*:5353 /);
    const audit = await lab.auditHas(/DETECTED ingress udp .* -> .*:5353 /);
    assert.match(
      audit,
      new RegExp(
        `DETECTED ingress tcp ${lab.v4.a}:\\d+ -> ${lab.v4.b}:443 on ${lab.ifB} by rule default`,
      ),
    );
    assert.match(
      audit,
      new RegExp(
        `DETECTED ingress tcp ${lab.v4.a}:\\d+ -> ${lab.v4.b}:9999 on ${lab.ifB} by rule default`,
      ),
    );
    assert.doesNotMatch(audit, /BLOCKED/);
  } finally {
    await lab.close();
  }
});

test("reload: an allowed transfer survives, a bad file is refused, a mode switch applies", async (t) => {
  const lab = await startMoatLab(t.name, (l) => policy(l, "prevent"));
  try {
    const size = 24 * 1024 * 1024;
    const transfer = spawn(
      "ip",
      [
        "netns",
        "exec",
        lab.a,
        "curl",
        "-sS",
        "-o",
        "/dev/null",
        "-w",
        "%{size_download}",
        "--limit-rate",
        "8M",
        `http://${lab.v4.b}/stream/${size}`,
      ],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    let downloaded = "";
    transfer.stdout.on("data", (d: Buffer) => (downloaded += d.toString()));
    const done = new Promise<number>((resolve) =>
      transfer.on("exit", (code) => resolve(code ?? -1)),
    );

    await new Promise((r) => setTimeout(r, 700));
    // a new policy that still allows port 80 (file change -> reload)
    lab.writePolicy(
      policy(
        lab,
        "prevent",
        `  - name: extra\n    direction: ingress\n    action: allow\n    layer4: { protocol: tcp, port: [8443] }\n`,
      ),
    );
    await lab.daemon.waitFor(/^policy .* applied: generation 2/);
    // SIGHUP reloads too
    lab.daemon.kill("SIGHUP");
    await lab.daemon.waitFor(/^policy .* applied: generation 3/);
    // a broken file is refused with FILE:LINE:COL and the running policy stays
    lab.writePolicy(
      "version: 1\nmode: prevent\nrules:\n  - name: Bad Name\n    direction: sideways\n    action: allow\n",
    );
    const refused = await lab.daemon.waitFor(/reload refused/);
    assert.match(refused, /keeping generation 3/);
    await lab.daemon.waitFor(
      new RegExp(`^${lab.policyPath.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}:\\d+:\\d+ `),
    );

    assert.equal(await done, 0, "transfer completed");
    assert.equal(Number(downloaded), size, "every byte arrived");
    assert.equal(
      lab.scan([8080]).get(8080),
      "filtered",
      "old policy still enforced after the refusal",
    );

    // switch to detect without a restart
    lab.writePolicy(policy(lab, "detect"));
    await lab.daemon.waitFor(/^policy .* applied: generation 4, .*mode detect/);
    assert.equal(lab.scan([8080]).get(8080), "open", "detect mode lets it through");
  } finally {
    await lab.close();
  }
});

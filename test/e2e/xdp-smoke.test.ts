// Two namespaces joined by veth: a prevent-mode policy whose rule blocks one local address makes
// moat's XDP program drop ping and TCP to it, and the traffic returns when a reloaded policy no
// longer blocks it.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createLab } from "../helpers/netns.ts";
import { spawnLines } from "../helpers/child.ts";
import { inNamespace, ROOT } from "../helpers/paths.ts";

/** The harness loads and verifies moat's programs first: seconds, more on a busy machine. */
const HARNESS_READY_MS = 60_000;

const policy = (blocked: string[]) => `
version: 1
mode: prevent
defaults: { ingress: allow, egress: allow }
rules:
${
  blocked.length === 0
    ? "  []"
    : `  - name: block-b
    direction: ingress
    action: block
    layer3: { local: [${blocked.map((a) => `"${a}"`).join(", ")}] }`
}
`;

test(
  "xdp drops ping and tcp to a blocked address until the policy no longer blocks it",
  { timeout: 120_000 },
  async (t) => {
    const lab = createLab(t.name);
    const dir = mkdtempSync(join(tmpdir(), "moat-smoke-"));
    const blockFile = join(dir, "block.yaml");
    const openFile = join(dir, "open.yaml");
    writeFileSync(blockFile, policy([lab.v4.b, lab.v6.b]));
    writeFileSync(openFile, policy([]));
    const server = spawn("ip", ["netns", "exec", lab.b, "nc", "-lk", "8080"], { stdio: "ignore" });
    const harness = spawnLines(
      ...inNamespace(lab.b, `${ROOT}test/helpers/datapath-harness.ts`, [lab.ifB, openFile]),
    );
    try {
      const ready = await harness.waitFor(/^ready /, HARNESS_READY_MS);
      assert.match(ready, /"hook":"xdp"/);
      assert.match(ready, /"hook":"tc-egress"/);

      // reachable = any echo reply within 2 s (the first IPv6 ping can be lost to neighbour setup)
      const ping = (addr: string) => lab.inA("ping", ["-c", "2", "-i", "0.2", "-w", "2", addr]);
      const ping6 = (addr: string) =>
        lab.inA("ping", ["-6", "-c", "2", "-i", "0.2", "-w", "2", addr]);
      const tcp = (addr: string) => lab.inA("nc", ["-z", "-w", "2", addr, "8080"]);

      // before: everything passes
      assert.equal(ping(lab.v4.b), 0, "ping before the block");
      assert.equal(tcp(lab.v4.b), 0, "tcp before the block");
      assert.equal(ping6(lab.v6.b), 0, "ping6 before the block");

      // block one address (and the v6 one): it goes dark, its neighbour does not
      harness.send(`policy ${blockFile}`);
      await harness.waitFor(/^applied 2$/);
      assert.notEqual(ping(lab.v4.b), 0, "ping to the blocked address must fail");
      assert.notEqual(tcp(lab.v4.b), 0, "tcp to the blocked address must fail");
      assert.notEqual(ping6(lab.v6.b), 0, "ping6 to the blocked address must fail");
      assert.equal(ping(lab.v4.b2), 0, "ping to another address passes");

      const blocked = await harness.waitFor(/^event .* BLOCKED ingress icmp /);
      assert.match(
        blocked,
        new RegExp(`${lab.v4.a}:0 -> ${lab.v4.b}:0 on ${lab.ifB} by rule block-b`),
      );
      await harness.waitFor(/^event .* BLOCKED ingress tcp .*:8080 on .* by rule block-b/);
      harness.send("counters");
      const counters = JSON.parse((await harness.waitFor(/^counters /)).slice(9)) as Record<
        string,
        number
      >;
      assert.ok((counters.drop ?? 0) >= 3, `drop counter ${counters.drop}`);
      assert.ok((counters.blocked ?? 0) >= 3, `blocked counter ${counters.blocked}`);

      // a policy without the rule: traffic returns
      harness.send(`policy ${openFile}`);
      await harness.waitFor(/^applied 3$/);
      assert.equal(ping(lab.v4.b), 0, "ping after the reload");
      assert.equal(tcp(lab.v4.b), 0, "tcp after the reload");
      assert.equal(ping6(lab.v6.b), 0, "ping6 after the reload");

      harness.send("quit");
      await harness.waitFor(/^bye$/);
      assert.equal(await harness.exited, 0);
    } finally {
      harness.kill();
      server.kill();
      lab.cleanup();
      rmSync(dir, { recursive: true, force: true });
    }
  },
);

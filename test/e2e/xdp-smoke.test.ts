// Two namespaces joined by veth: moat's XDP program drops ping and TCP to a chosen prefix, and
// the traffic returns when the entry is removed.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createLab } from "../helpers/netns.ts";
import { spawnLines } from "../helpers/child.ts";
import { inNamespace, ROOT } from "../helpers/paths.ts";

test(
  "xdp drops ping and tcp to a denied prefix until the entry is removed",
  { timeout: 60_000 },
  async (t) => {
    const lab = createLab(t.name);
    const server = spawn("ip", ["netns", "exec", lab.b, "nc", "-lk", "8080"], { stdio: "ignore" });
    const harness = spawnLines(
      ...inNamespace(lab.b, `${ROOT}test/helpers/datapath-harness.ts`, [lab.ifB]),
    );
    try {
      const ready = await harness.waitFor(/^ready /);
      assert.match(ready, /"hook":"xdp"/);
      assert.match(ready, /"hook":"tc-egress"/);

      // reachable = any echo reply within 2 s (the first IPv6 ping can be lost to neighbour setup)
      const ping = (addr: string) => lab.inA("ping", ["-c", "2", "-i", "0.2", "-w", "2", addr]);
      const ping6 = (addr: string) =>
        lab.inA("ping", ["-6", "-c", "2", "-i", "0.2", "-w", "2", addr]);
      const tcp = (addr: string) => lab.inA("nc", ["-z", "-w", "2", addr, "8080"]);

      // before: everything passes
      assert.equal(ping(lab.v4.b), 0, "ping before deny");
      assert.equal(tcp(lab.v4.b), 0, "tcp before deny");
      assert.equal(ping6(lab.v6.b), 0, "ping6 before deny");

      // deny one /32 (and the v6 /128): that address goes dark, its neighbour does not
      harness.send(`deny ${lab.v4.b} 32`);
      await harness.waitFor(/^ok$/);
      harness.send(`deny ${lab.v6.b} 128`);
      await harness.waitFor(/^ok$/);
      assert.notEqual(ping(lab.v4.b), 0, "ping to denied prefix must fail");
      assert.notEqual(tcp(lab.v4.b), 0, "tcp to denied prefix must fail");
      assert.notEqual(ping6(lab.v6.b), 0, "ping6 to denied prefix must fail");
      assert.equal(ping(lab.v4.b2), 0, "ping outside the prefix passes");

      const blocked = await harness.waitFor(/^event .* BLOCKED ingress icmp /);
      assert.match(blocked, new RegExp(`${lab.v4.a}:0 -> ${lab.v4.b}:0 on ${lab.ifB}`));
      harness.send("counters");
      const counters = JSON.parse((await harness.waitFor(/^counters /)).slice(9)) as Record<
        string,
        number
      >;
      assert.ok((counters.drop ?? 0) >= 3, `drop counter ${counters.drop}`);

      // remove the entries: traffic returns
      harness.send(`allow ${lab.v4.b} 32`);
      await harness.waitFor(/^ok$/);
      harness.send(`allow ${lab.v6.b} 128`);
      await harness.waitFor(/^ok$/);
      assert.equal(ping(lab.v4.b), 0, "ping after allow");
      assert.equal(tcp(lab.v4.b), 0, "tcp after allow");
      assert.equal(ping6(lab.v6.b), 0, "ping6 after allow");

      harness.send("quit");
      await harness.waitFor(/^bye$/);
      assert.equal(await harness.exited, 0);
    } finally {
      harness.kill();
      server.kill();
      lab.cleanup();
    }
  },
);

// Events the pinned programs queue while no daemon runs (after kill -9, or after a SIGUSR2
// hand-over, before the next start) are judged under the previous daemon's generations: the next
// daemon reads them from the ring and names their rules as the previous daemon's policy did.
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { startMoatLab, type MoatLab } from "../helpers/moat-lab.ts";
import type { LineChild } from "../helpers/child.ts";
import type { Lab } from "../helpers/netns.ts";
import { guardedInterface } from "../helpers/ingress-mode.ts";

const policy = (lab: Lab & { auditPath: string }) => `version: 1
mode: prevent
defaults: { ingress: allow, egress: allow }
attach: { interfaces: [${guardedInterface(lab.ifB)}] }
logging: { audit: { path: ${lab.auditPath} } }
rules:
  - name: ssh
    direction: ingress
    action: allow
    layer4: { protocol: tcp, port: [22] }
  - name: banned
    direction: ingress
    action: block
    layer3: { remote: [${lab.v4.a}] }
    layer4: { protocol: tcp, port: [80] }
  - name: no-telnet
    direction: ingress
    action: block
    layer4: { protocol: tcp, port: [23] }
`;

/** A TCP connection attempt from the peer namespace to b's `port` (blocked: it times out). */
function connect(lab: Lab, port: number): void {
  spawnSync("ip", ["netns", "exec", lab.a, "nc", "-z", "-w", "1", lab.v4.b, String(port)], {
    timeout: 10_000,
  });
}

/** The daemon's line for the blocked connection to b's `port`. */
const blockedLine = (daemon: LineChild, lab: Lab, port: number) =>
  daemon.waitFor(
    new RegExp(`BLOCKED ingress tcp \\S+ -> ${lab.v4.b.replaceAll(".", "\\.")}:${port} `),
    30_000,
  );

/**
 * One lab for both tests (each daemon start costs a program load): the second begins with the
 * daemon the first started last.
 */
let shared: Promise<MoatLab> | undefined;
after(async () => {
  await (await shared?.catch(() => undefined))?.close();
});

for (const signal of ["SIGKILL", "SIGUSR2"] as const) {
  test(`a connection blocked while no daemon runs (after ${signal}) is reported by the next daemon with its rule's name`, async () => {
    const lab = await (shared ??= startMoatLab("restart-rule-names", policy));
    connect(lab, 80);
    assert.match(await blockedLine(lab.daemon, lab, 80), / by rule banned$/);

    const old = lab.daemon;
    old.kill(signal);
    await old.exited;
    // the pinned programs judge alone: their events wait in the pinned ring
    connect(lab, 80);
    connect(lab, 23);
    const next = await lab.restart(signal); // (the old one has exited already)
    assert.match(
      await blockedLine(next, lab, 80),
      / by rule banned$/,
      "the queued event names the rule of the previous daemon's generation",
    );
    assert.match(await blockedLine(next, lab, 23), / by rule no-telnet$/);
  });
}

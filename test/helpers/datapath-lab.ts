// moat's datapath on a lab: two namespaces joined by veth (netns.ts), the datapath harness
// (datapath-harness.ts) attached to b's interface under a policy, and the Node processes a test
// runs in either namespace; all of it ended and removed when the test's body ends, however.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createLab, type Lab } from "./netns.ts";
import { spawnLines, type LineChild } from "./child.ts";
import { inNamespace, NODE, ROOT } from "./paths.ts";

/** The harness loads and verifies moat's programs first: seconds, more on a busy machine. */
const HARNESS_READY_MS = 60_000;

/**
 * A policy that blocks all but `rules` (YAML list items, each line indented as under `rules:`)
 * and ICMPv6 both ways, without which IPv6 neighbour discovery is blocked too.
 */
export const blockAllBut = (rules: string): string => `version: 1
mode: prevent
defaults: { ingress: block, egress: block }
rules:
${rules}  - name: neighbours-in
    direction: ingress
    action: allow
    layer4: { protocol: icmpv6 }
  - name: neighbours-out
    direction: egress
    action: allow
    layer4: { protocol: icmpv6 }
`;

export interface DatapathLab extends Lab {
  /** The harness on b's interface, past its "ready" line (commands on stdin, events on stdout). */
  harness: LineChild;
  /** Runs this Node with `args` in namespace `ns`; it is ended with the lab. */
  node(ns: string, ...args: string[]): LineChild;
}

/** Runs `body` with moat's datapath on b's interface under `policy` (YAML). */
export async function withDatapathLab(
  name: string,
  policy: string,
  body: (lab: DatapathLab) => Promise<void>,
): Promise<void> {
  const lab = createLab(name);
  const dir = mkdtempSync(join(tmpdir(), "moat-datapath-"));
  const children: LineChild[] = [];
  const node = (ns: string, ...args: string[]) => {
    const child = spawnLines("ip", ["netns", "exec", ns, NODE, ...args]);
    children.push(child);
    return child;
  };
  try {
    const file = join(dir, "policy.yaml");
    writeFileSync(file, policy);
    const harness = spawnLines(
      ...inNamespace(lab.b, `${ROOT}test/helpers/datapath-harness.ts`, [lab.ifB, file]),
    );
    children.push(harness);
    await harness.waitFor(/^ready /, HARNESS_READY_MS);
    await body({ ...lab, harness, node });
  } finally {
    for (const child of children) child.kill();
    lab.cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
}

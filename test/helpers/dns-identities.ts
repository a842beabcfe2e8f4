// The lab's resolvers for a socket-hook DNS test, and a new identity for each case: a cgroup of
// its own below the attached one, which has looked nothing up yet (names learnt by one identity
// for an address merge, so two cases sharing an identity could pass for the wrong reason).
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import type { CgroupForTest } from "./cgroup-lab.ts";
import type { Where } from "./dns-clients.ts";
import { startDnsPeers, type DnsPeers } from "./dns-lab.ts";
import type { Lab } from "./netns.ts";

export interface DnsIdentities {
  zone: DnsPeers["zone"];
  resolv: DnsPeers["resolv"];
  /** A new identity in namespace b: the cgroup `name` below the attached one, made now. */
  fresh(name: string): Where;
}

/** startDnsPeers for `lab`, its resolvers ended when the test ends. */
export async function startDnsIdentities(cg: CgroupForTest, lab: Lab): Promise<DnsIdentities> {
  const dns = await startDnsPeers(lab);
  cg.onClose(() => dns.close());
  const fresh = (name: string): Where => {
    const dir = join(cg.dir, name);
    mkdirSync(dir);
    return { ns: lab.b, cgroupDir: dir };
  };
  return { zone: dns.zone, resolv: dns.resolv, fresh };
}

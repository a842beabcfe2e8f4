// Allow rules that know a process only by its name. A name (comm) is what a process calls itself:
// any process can take any name (prctl PR_SET_NAME, `exec -a`), so such a rule lets through
// whatever claims it. path (the executable, by inode) and user (the kernel's uid) are facts a
// process cannot choose; cgroup and container are set by whoever starts it. docs/attribution.md.

import { diagnostic, type Diagnostic } from "./diagnostics.ts";
import type { PolicyModel } from "./model.ts";

export function findWeakIdentityRules(model: PolicyModel): Diagnostic[] {
  const found: Diagnostic[] = [];
  for (const rule of model.rules) {
    const p = rule.process;
    if (rule.action !== "allow" || !p?.name) continue;
    if (p.path || p.user || p.cgroup || p.container) continue;
    found.push(
      diagnostic(
        p.pos,
        `rule '${rule.name}' allows by process name only, which any process can take (prctl PR_SET_NAME, exec -a); add path or user to know it is ${p.name.join(" or ")}`,
        "warning",
      ),
    );
  }
  return found;
}

// process and interface: who owns the socket, and which way the connection is routed.
// Unknown facts (a packet hook judging them) answer "maybe".

import type { InterfaceMatch, ProcessMatch } from "../config/model.ts";
import type { InterfaceFacts, ProcessFacts } from "./facts.ts";
import { globMatch } from "./glob.ts";
import { all, maybe, no, yes, type Outcome } from "./tri.ts";

const check = (ok: boolean, because: string): Outcome => (ok ? yes(because) : no());

export function matchProcess(rule: ProcessMatch, facts: ProcessFacts | undefined): Outcome {
  if (!facts) return maybe("process");
  const parts: Outcome[] = [];
  if (rule.path)
    parts.push(
      check(
        rule.path.some((g) => globMatch(g, facts.path)),
        `process ${facts.path}`,
      ),
    );
  if (rule.name)
    parts.push(
      check(
        rule.name.some((g) => globMatch(g, facts.name)),
        `process name ${facts.name}`,
      ),
    );
  if (rule.user) parts.push(matchUser(rule.user, facts));
  if (rule.cgroup)
    parts.push(
      check(
        rule.cgroup.some((g) => inCgroup(g, facts.cgroup)),
        `cgroup ${facts.cgroup}`,
      ),
    );
  if (rule.container) {
    const c = facts.container;
    if (c === undefined) parts.push(maybe("container"));
    else if (c === null) parts.push(no());
    else {
      const { id, name, image } = rule.container;
      const ok =
        (id === undefined || globMatch(id, c.id)) &&
        (name === undefined || globMatch(name, c.name)) &&
        (image === undefined || globMatch(image, c.image));
      parts.push(check(ok, `container ${c.name} (${c.image})`));
    }
  }
  return all(parts);
}

function matchUser(users: (number | string)[], facts: ProcessFacts): Outcome {
  if (users.includes(facts.uid)) return yes(`uid ${facts.uid}`);
  const names = users.filter((u): u is string => typeof u === "string");
  if (names.length === 0) return no();
  if (facts.user === undefined) return maybe("user name");
  return check(names.includes(facts.user), `user ${facts.user}`);
}

/** The cgroup itself or anything under it: "/system.slice" matches "/system.slice/nginx.service". */
function inCgroup(pattern: string, cgroup: string): boolean {
  const parts = cgroup.split("/");
  for (let n = parts.length; n >= 1; n--) {
    const ancestor = parts.slice(0, n).join("/") || "/";
    if (globMatch(pattern, ancestor)) return true;
  }
  return false;
}

export function matchInterface(rule: InterfaceMatch, facts: InterfaceFacts | undefined): Outcome {
  if (!facts) return maybe("interface");
  const parts: Outcome[] = [];
  if (rule.name)
    parts.push(
      check(
        rule.name.some((g) => globMatch(g, facts.name)),
        `interface ${facts.name}`,
      ),
    );
  if (rule.tunnel !== undefined)
    parts.push(check(rule.tunnel === facts.tunnel, facts.tunnel ? "tunnelled" : "not tunnelled"));
  return all(parts);
}

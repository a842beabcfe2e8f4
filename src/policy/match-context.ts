// process and interface: who owns the socket, and which way the connection is routed.
// Unknown facts (a packet hook judging them, or a field `moat explain` was not given) answer
// "maybe"; known ones decide.

import type { InterfaceMatch, ProcessMatch } from "../config/model.ts";
import type { InterfaceFacts, KnownProcess } from "./facts.ts";
import { globMatch } from "./glob.ts";
import { all, maybe, no, yes, type Outcome } from "./tri.ts";

const check = (ok: boolean, because: string): Outcome => (ok ? yes(because) : no());

/** A list of globs against one fact; "maybe" if the fact is unknown. */
function globs(
  patterns: string[],
  fact: string | undefined,
  need: string,
  because: (fact: string) => string,
  match: (pattern: string, fact: string) => boolean = globMatch,
): Outcome {
  if (fact === undefined) return maybe(need);
  return check(
    patterns.some((p) => match(p, fact)),
    because(fact),
  );
}

export function matchProcess(rule: ProcessMatch, facts: KnownProcess | null | undefined): Outcome {
  if (facts === null) return no();
  if (!facts) return maybe("process");
  const parts: Outcome[] = [];
  if (rule.path) parts.push(globs(rule.path, facts.path, "process path", (p) => `process ${p}`));
  if (rule.name)
    parts.push(globs(rule.name, facts.name, "process name", (n) => `process name ${n}`));
  if (rule.user) parts.push(matchUser(rule.user, facts));
  if (rule.cgroup)
    parts.push(globs(rule.cgroup, facts.cgroup, "process cgroup", (c) => `cgroup ${c}`, inCgroup));
  if (rule.container) parts.push(matchContainer(rule.container, facts.container));
  return all(parts);
}

/** A user entry is a uid (a number, or a string of digits) or a user name. */
export function splitUsers(users: (number | string)[]): { uids: number[]; names: string[] } {
  const uids: number[] = [];
  const names: string[] = [];
  for (const u of users) {
    if (typeof u === "number") uids.push(u);
    else if (/^\d+$/.test(u)) uids.push(Number(u));
    else names.push(u);
  }
  return { uids, names };
}

function matchUser(users: (number | string)[], facts: KnownProcess): Outcome {
  const { uids, names } = splitUsers(users);
  const { user, userName } = facts;
  if (user !== undefined && uids.includes(user)) return yes(`uid ${user}`);
  if (typeof userName === "string" && names.includes(userName)) return yes(`user ${userName}`);
  const needs: string[] = [];
  if (uids.length > 0 && user === undefined) needs.push("process user");
  // userName null: the uid has no name in /etc/passwd, so no named user can be it
  if (names.length > 0 && userName === undefined) needs.push("user name");
  return needs.length > 0 ? maybe(...needs) : no();
}

/** The cgroup itself or anything under it: "/system.slice" matches "/system.slice/nginx.service". */
export function inCgroup(pattern: string, cgroup: string): boolean {
  const parts = cgroup.split("/");
  for (let n = parts.length; n >= 1; n--) {
    const ancestor = parts.slice(0, n).join("/") || "/";
    if (globMatch(pattern, ancestor)) return true;
  }
  return false;
}

/**
 * A glob on the full id; a plain hex string of 12 or more digits (what `docker ps` and
 * `crictl ps` print) also matches the ids it starts.
 */
export function containerIdMatch(pattern: string, id: string): boolean {
  if (/^[0-9a-f]{12,}$/.test(pattern)) return id.startsWith(pattern);
  return globMatch(pattern, id);
}

/** Registries record "docker.io/library/nginx:1.27" for what users call "nginx:1.27". */
const FAMILIAR_PREFIXES = ["docker.io/library/", "docker.io/", "localhost/"];

/** A glob on the image as recorded or in its familiar short form. */
export function imageMatch(pattern: string, image: string): boolean {
  if (globMatch(pattern, image)) return true;
  const prefix = FAMILIAR_PREFIXES.find((p) => image.startsWith(p));
  return prefix !== undefined && globMatch(pattern, image.slice(prefix.length));
}

function matchContainer(
  rule: NonNullable<ProcessMatch["container"]>,
  c: KnownProcess["container"],
): Outcome {
  if (c === undefined) return maybe("container");
  if (c === null) return no();
  const parts: Outcome[] = [];
  if (rule.id !== undefined)
    parts.push(
      globs(
        [rule.id],
        c.id,
        "container id",
        (id) => `container ${id.slice(0, 12)}`,
        containerIdMatch,
      ),
    );
  if (rule.name !== undefined)
    parts.push(globs([rule.name], c.name, "container name", (n) => `container name ${n}`));
  if (rule.image !== undefined)
    parts.push(
      globs([rule.image], c.image, "container image", (i) => `container image ${i}`, imageMatch),
    );
  return all(parts);
}

export function matchInterface(
  rule: InterfaceMatch,
  facts: Partial<InterfaceFacts> | undefined,
): Outcome {
  if (!facts) return maybe("interface");
  const parts: Outcome[] = [];
  if (rule.name)
    parts.push(globs(rule.name, facts.name, "interface name", (n) => `interface ${n}`));
  if (rule.tunnel !== undefined) {
    const tunnel = facts.tunnel;
    parts.push(
      tunnel === undefined
        ? maybe("interface tunnel")
        : check(rule.tunnel === tunnel, tunnel ? "tunnelled" : "not tunnelled"),
    );
  }
  return all(parts);
}

// process and interface sections, field by field: a fixture table {rule section, facts, expected}
// run through the reference evaluator. "yes" = the rule decides, "no" = the default does,
// "maybe" = deferred (with what it needs).

import { test } from "node:test";
import assert from "node:assert/strict";
import { parsePolicy } from "../../src/config/index.ts";
import { evaluate, type ConnectionFacts } from "../../src/policy/evaluator.ts";
import type { KnownProcess } from "../../src/policy/facts.ts";

const ID = "3f2a9c0e1b7d4a5f8e6c2b1a0d9f8e7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e";

const curl: KnownProcess = {
  pid: 812,
  name: "curl",
  path: "/usr/bin/curl",
  user: 1000,
  userName: "alice",
  cgroup: "/user.slice/user-1000.slice/session-2.scope",
  container: null,
};
const web: KnownProcess = {
  pid: 4242,
  name: "nginx",
  path: "/usr/sbin/nginx",
  user: 101,
  userName: null,
  cgroup: `/system.slice/docker-${ID}.scope`,
  container: { id: ID, name: "web", image: "docker.io/library/nginx:1.27" },
};

type Expect = "yes" | "no" | `maybe:${string}`;

interface Case {
  what: string;
  section: string;
  facts: Pick<ConnectionFacts, "process" | "interface">;
  expect: Expect;
}

const cases: Case[] = [
  // path
  {
    what: "path exact",
    section: "process: { path: /usr/bin/curl }",
    facts: { process: curl },
    expect: "yes",
  },
  {
    what: "path glob",
    section: 'process: { path: "/usr/*/curl" }',
    facts: { process: curl },
    expect: "yes",
  },
  {
    what: "path * spans /",
    section: 'process: { path: "/usr/*" }',
    facts: { process: curl },
    expect: "yes",
  },
  {
    what: "path other",
    section: "process: { path: /usr/bin/wget }",
    facts: { process: curl },
    expect: "no",
  },
  {
    what: "path list",
    section: "process: { path: [/bin/x, /usr/bin/curl] }",
    facts: { process: curl },
    expect: "yes",
  },
  {
    what: "path is case-sensitive",
    section: "process: { path: /usr/bin/CURL }",
    facts: { process: curl },
    expect: "no",
  },
  {
    what: "path unknown",
    section: "process: { path: /usr/bin/curl }",
    facts: { process: { name: "curl" } },
    expect: "maybe:process path",
  },
  // name
  {
    what: "name exact",
    section: "process: { name: curl }",
    facts: { process: curl },
    expect: "yes",
  },
  {
    what: "name glob ?",
    section: 'process: { name: "cur?" }',
    facts: { process: curl },
    expect: "yes",
  },
  {
    what: "name other",
    section: "process: { name: wget }",
    facts: { process: curl },
    expect: "no",
  },
  {
    what: "name unknown",
    section: "process: { name: curl }",
    facts: { process: { path: "/usr/bin/curl" } },
    expect: "maybe:process name",
  },
  // user
  { what: "uid", section: "process: { user: [1000] }", facts: { process: curl }, expect: "yes" },
  {
    what: "uid written as a string",
    section: 'process: { user: ["1000"] }',
    facts: { process: curl },
    expect: "yes",
  },
  { what: "other uid", section: "process: { user: [0] }", facts: { process: curl }, expect: "no" },
  {
    what: "user name",
    section: "process: { user: [alice] }",
    facts: { process: curl },
    expect: "yes",
  },
  {
    what: "other user name",
    section: "process: { user: [bob] }",
    facts: { process: curl },
    expect: "no",
  },
  {
    what: "uid or name: name hits",
    section: "process: { user: [0, alice] }",
    facts: { process: curl },
    expect: "yes",
  },
  {
    what: "name of a uid without one",
    section: "process: { user: [www-data] }",
    facts: { process: web },
    expect: "no",
  },
  {
    what: "user name unknown",
    section: "process: { user: [alice] }",
    facts: { process: { user: 1000 } },
    expect: "maybe:user name",
  },
  {
    what: "uid unknown, name known other",
    section: "process: { user: [1000, bob] }",
    facts: { process: { userName: "alice" } },
    expect: "maybe:process user",
  },
  {
    what: "uid unknown, name hits",
    section: "process: { user: [1000, alice] }",
    facts: { process: { userName: "alice" } },
    expect: "yes",
  },
  // cgroup
  {
    what: "cgroup itself",
    section: "process: { cgroup: /user.slice/user-1000.slice/session-2.scope }",
    facts: { process: curl },
    expect: "yes",
  },
  {
    what: "cgroup ancestor",
    section: "process: { cgroup: /user.slice }",
    facts: { process: curl },
    expect: "yes",
  },
  {
    what: "cgroup glob",
    section: 'process: { cgroup: "/system.slice/docker-*.scope" }',
    facts: { process: web },
    expect: "yes",
  },
  {
    what: "cgroup prefix of a name is not an ancestor",
    section: "process: { cgroup: /user }",
    facts: { process: curl },
    expect: "no",
  },
  {
    what: "cgroup root matches all",
    section: "process: { cgroup: / }",
    facts: { process: curl },
    expect: "yes",
  },
  {
    what: "cgroup other",
    section: "process: { cgroup: /system.slice }",
    facts: { process: curl },
    expect: "no",
  },
  {
    what: "cgroup unknown",
    section: "process: { cgroup: /system.slice }",
    facts: { process: { name: "x" } },
    expect: "maybe:process cgroup",
  },
  // container
  {
    what: "container id full",
    section: `process: { container: { id: "${ID}" } }`,
    facts: { process: web },
    expect: "yes",
  },
  {
    what: "container id prefix glob",
    section: 'process: { container: { id: "3f2a*" } }',
    facts: { process: web },
    expect: "yes",
  },
  {
    what: "container short id (12 hex)",
    section: 'process: { container: { id: "3f2a9c0e1b7d" } }',
    facts: { process: web },
    expect: "yes",
  },
  {
    what: "container short prefix without * is not a glob hit",
    section: 'process: { container: { id: "3f2a" } }',
    facts: { process: web },
    expect: "no",
  },
  {
    what: "container other id",
    section: 'process: { container: { id: "ffff*" } }',
    facts: { process: web },
    expect: "no",
  },
  {
    what: "container name",
    section: "process: { container: { name: web } }",
    facts: { process: web },
    expect: "yes",
  },
  {
    what: "container name glob",
    section: 'process: { container: { name: "w*" } }',
    facts: { process: web },
    expect: "yes",
  },
  {
    what: "container other name",
    section: "process: { container: { name: db } }",
    facts: { process: web },
    expect: "no",
  },
  {
    what: "container image familiar form",
    section: 'process: { container: { image: "nginx:*" } }',
    facts: { process: web },
    expect: "yes",
  },
  {
    what: "container image full form",
    section: 'process: { container: { image: "docker.io/library/nginx:1.27" } }',
    facts: { process: web },
    expect: "yes",
  },
  {
    what: "container other image",
    section: 'process: { container: { image: "httpd:*" } }',
    facts: { process: web },
    expect: "no",
  },
  {
    what: "container: every field must match",
    section: 'process: { container: { name: web, image: "httpd:*" } }',
    facts: { process: web },
    expect: "no",
  },
  {
    what: "not in a container",
    section: "process: { container: { name: web } }",
    facts: { process: curl },
    expect: "no",
  },
  {
    what: "container unknown",
    section: "process: { container: { name: web } }",
    facts: { process: { name: "nginx" } },
    expect: "maybe:container",
  },
  {
    what: "container name unknown",
    section: "process: { container: { name: web } }",
    facts: { process: { container: { id: ID } } },
    expect: "maybe:container name",
  },
  // several fields
  {
    what: "all fields match",
    section: "process: { path: /usr/bin/curl, name: curl, user: [alice], cgroup: /user.slice }",
    facts: { process: curl },
    expect: "yes",
  },
  {
    what: "one field fails",
    section: "process: { path: /usr/bin/curl, user: [bob] }",
    facts: { process: curl },
    expect: "no",
  },
  {
    what: "a known no beats an unknown",
    section: "process: { path: /usr/bin/wget, name: curl }",
    facts: { process: { path: "/usr/bin/curl" } },
    expect: "no",
  },
  {
    what: "process absent",
    section: "process: { name: curl }",
    facts: {},
    expect: "maybe:process",
  },
  // interface
  {
    what: "interface name",
    section: "interface: { name: [wg0] }",
    facts: { interface: { name: "wg0", tunnel: true } },
    expect: "yes",
  },
  {
    what: "interface glob",
    section: 'interface: { name: ["wg*", "tun*"] }',
    facts: { interface: { name: "tun3", tunnel: true } },
    expect: "yes",
  },
  {
    what: "interface other",
    section: "interface: { name: [wg0] }",
    facts: { interface: { name: "eth0", tunnel: false } },
    expect: "no",
  },
  {
    what: "tunnel true on a tunnel",
    section: "interface: { tunnel: true }",
    facts: { interface: { name: "vxlan0", tunnel: true } },
    expect: "yes",
  },
  {
    what: "tunnel true on a plain link",
    section: "interface: { tunnel: true }",
    facts: { interface: { name: "eth0", tunnel: false } },
    expect: "no",
  },
  {
    what: "tunnel false on a plain link",
    section: "interface: { tunnel: false }",
    facts: { interface: { name: "eth0", tunnel: false } },
    expect: "yes",
  },
  {
    what: "tunnel false on a tunnel",
    section: "interface: { tunnel: false }",
    facts: { interface: { name: "wg0", tunnel: true } },
    expect: "no",
  },
  {
    what: "name and tunnel",
    section: 'interface: { name: ["wg*"], tunnel: true }',
    facts: { interface: { name: "wg1", tunnel: true } },
    expect: "yes",
  },
  {
    what: "interface name unknown",
    section: "interface: { name: [wg0] }",
    facts: { interface: { tunnel: true } },
    expect: "maybe:interface name",
  },
  {
    what: "tunnel unknown",
    section: "interface: { tunnel: true }",
    facts: { interface: { name: "wg0" } },
    expect: "maybe:interface tunnel",
  },
  {
    what: "interface absent",
    section: "interface: { name: [wg0] }",
    facts: { process: curl },
    expect: "maybe:interface",
  },
  // both
  {
    what: "process and interface",
    section: "process: { name: curl }\n    interface: { tunnel: true }",
    facts: { process: curl, interface: { name: "wg0", tunnel: true } },
    expect: "yes",
  },
  {
    what: "process known, interface absent",
    section: "process: { name: curl }\n    interface: { tunnel: true }",
    facts: { process: curl },
    expect: "maybe:interface",
  },
];

function policyWith(section: string) {
  return parsePolicy(
    `version: 1
mode: prevent
defaults: { ingress: block, egress: block }
rules:
  - name: r
    direction: egress
    action: allow
    ${section}
`,
    "p.yaml",
  );
}

for (const c of cases) {
  test(`${c.what}: ${c.expect}`, () => {
    const facts: ConnectionFacts = {
      direction: "egress",
      protocol: "tcp",
      family: 4,
      local: { ip: "10.0.0.5", port: 40000 },
      remote: { ip: "203.0.113.9", port: 443 },
      ...c.facts,
    };
    const result = evaluate(policyWith(c.section), facts);
    if (c.expect === "yes") assert.deepEqual([result.verdict, result.rule], ["allowed", "r"]);
    else if (c.expect === "no")
      assert.deepEqual([result.verdict, result.rule], ["blocked", "default"]);
    else {
      assert.ok(result.verdict === "deferred", `expected deferred, got ${result.verdict}`);
      assert.deepEqual(result.needs, [c.expect.slice("maybe:".length)]);
    }
  });
}

test("the reason names the facts that matched", () => {
  const result = evaluate(
    policyWith(
      'process: { path: "/usr/bin/*", user: [alice], container: { id: "3f2a*", image: "nginx:*" } }',
    ),
    {
      direction: "egress",
      protocol: "tcp",
      family: 4,
      local: { ip: "10.0.0.5", port: 40000 },
      remote: { ip: "203.0.113.9", port: 443 },
      process: { ...web, path: "/usr/bin/nginx", userName: "alice" },
    },
  );
  assert.equal(
    result.reason,
    "rule r (line 5): process /usr/bin/nginx, user alice, container 3f2a9c0e1b7d, container image docker.io/library/nginx:1.27",
  );
});

test("process and interface sections match TCP and UDP only, as the kernel knows them", () => {
  const policy = parsePolicy(
    `version: 1
mode: prevent
defaults: { ingress: allow, egress: allow }
rules:
  - name: curl-out
    direction: egress
    action: block
    process: { path: /usr/bin/curl }
  - name: via-eth0
    direction: egress
    action: block
    interface: { name: [eth0] }
`,
    "p.yaml",
  );
  const facts = (protocol: ConnectionFacts["protocol"]): ConnectionFacts => ({
    direction: "egress",
    protocol,
    family: 4,
    local: { ip: "10.0.0.1", ...(protocol === "udp" ? { port: 40000 } : {}) },
    remote: { ip: "10.0.0.2", ...(protocol === "udp" ? { port: 53 } : {}) },
    ...(protocol === "icmp" ? { icmp: { type: 8, code: 0 } } : {}),
    process: curl,
    interface: { name: "eth0", tunnel: false },
  });
  assert.equal(evaluate(policy, facts("udp")).rule, "curl-out");
  for (const protocol of ["icmp", 136] as const)
    assert.equal(evaluate(policy, facts(protocol)).rule, "default", `protocol ${protocol}`);
});

// Interface rules for incoming connections: moat's host (namespace b) has two ways in from
// namespace a, its veth and a second veth `wg`; a rule lets port 80 in by `wg` only. The packet
// hooks judge a connection by the interface its first packet came in by.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { startMoatLab } from "../helpers/moat-lab.ts";
import { guardedInterface } from "../helpers/ingress-mode.ts";
import { addMacvlan, addSecondVeth } from "../helpers/lab-links.ts";

const ip = (...args: string[]) => execFileSync("ip", args, { encoding: "utf8" });

test("an incoming connection is let in by the interface an ingress rule names, not by another", async (t) => {
  const wg = `miw${process.pid % 100000}`;
  const lab = await startMoatLab(
    t.name,
    (l) => {
      addSecondVeth(l, wg);
      return `version: 1
mode: prevent
defaults: { ingress: block, egress: allow }
attach: { interfaces: [${guardedInterface(l.ifB)}, ${guardedInterface(wg)}] }
logging: { audit: { path: ${l.auditPath} } }
rules:
  - { name: web-by-${wg}, direction: ingress, action: allow, log: true, layer4: { protocol: tcp, port: [80] }, interface: { name: [${wg}] } }
`;
    },
    ["tcp:80"],
  );
  t.after(() => lab.close());

  await t.test("in by the interface the rule names: let in, reported by the rule", async () => {
    const r = lab.curl("http://10.77.0.1/", ["--max-time", "3"]);
    assert.equal(r.status, 0, "curl from a by wg");
    await lab.daemon.waitFor(
      new RegExp(`ALLOWED ingress tcp .* -> 10\\.77\\.0\\.1:80 .*by rule web-by-${wg}`),
    );
  });

  await t.test("in by the other interface: the default blocks it", async () => {
    const r = lab.curl(`http://${lab.v4.b}/`, ["--max-time", "3"]);
    assert.equal(r.status, 28, "curl from a by the veth: its SYN dropped");
    await lab.auditHas(
      new RegExp(`BLOCKED ingress tcp .* -> ${lab.v4.b.replace(/\./g, "\\.")}:80 .*default`),
    );
  });
});

test("a bridge's port is judged as the bridge: rules naming the bridge decide what comes in by the port", async (t) => {
  const br = `mib${process.pid % 100000}`;
  const lab = await startMoatLab(
    t.name,
    (l) => {
      ip("-n", l.b, "link", "add", br, "type", "bridge");
      ip("-n", l.b, "link", "set", l.ifB, "master", br);
      ip("-n", l.b, "addr", "add", "10.88.0.1/24", "dev", br);
      ip("-n", l.a, "addr", "add", "10.88.0.5/24", "dev", l.ifA);
      ip("-n", l.b, "link", "set", br, "up");
      return `version: 1
mode: prevent
defaults: { ingress: block, egress: allow }
attach: { interfaces: [${guardedInterface(l.ifB)}, ${guardedInterface(br)}] }
rules:
  - { name: web-by-bridge, direction: ingress, action: allow, layer4: { protocol: tcp, port: [80] }, interface: { name: [${br}] } }
  - { name: no-8080-by-bridge, direction: ingress, action: block, layer4: { protocol: tcp, port: [8080] }, interface: { name: [${br}] } }
  - { name: web-8080, direction: ingress, action: allow, layer4: { protocol: tcp, port: [8080] } }
`;
    },
    ["tcp:80,8080"],
  );
  t.after(() => lab.close());
  assert.equal(
    lab.curl("http://10.88.0.1/", ["--max-time", "3"]).status,
    0,
    "port 80, let in by the bridge's rule",
  );
  assert.equal(
    lab.curl("http://10.88.0.1:8080/", ["--max-time", "3"]).status,
    28,
    "port 8080, blocked by the bridge's rule",
  );
  await lab.daemon.waitFor(
    /BLOCKED ingress tcp .* -> 10\.88\.0\.1:8080 .*by rule no-8080-by-bridge/,
  );
});

test("a macvlan on an attached interface is judged as the macvlan: rules naming it decide what comes in for its address", async (t) => {
  const mv = `mim${process.pid % 100000}`;
  const lab = await startMoatLab(
    t.name,
    (l) => {
      // the macvlan's frames pass the lower veth's hooks first; only the veth is attached
      addMacvlan(l, mv);
      return `version: 1
mode: prevent
defaults: { ingress: block, egress: allow }
attach: { interfaces: [${guardedInterface(l.ifB)}] }
rules:
  - { name: web-by-macvlan, direction: ingress, action: allow, layer4: { protocol: tcp, port: [80] }, interface: { name: [${mv}] } }
  - { name: no-8080-by-macvlan, direction: ingress, action: block, layer4: { protocol: tcp, port: [8080] }, interface: { name: [${mv}] } }
  - { name: web-8080, direction: ingress, action: allow, layer4: { protocol: tcp, port: [8080] } }
`;
    },
    ["tcp:80,8080"],
  );
  t.after(() => lab.close());
  assert.equal(
    lab.curl("http://10.89.0.1/", ["--max-time", "3"]).status,
    0,
    "port 80, let in by the macvlan's rule",
  );
  assert.equal(
    lab.curl("http://10.89.0.1:8080/", ["--max-time", "3"]).status,
    28,
    "port 8080, blocked by the macvlan's rule",
  );
  await lab.daemon.waitFor(
    new RegExp(
      `BLOCKED ingress tcp .* -> 10\\.89\\.0\\.1:8080 on ${mv} by rule no-8080-by-macvlan`,
    ),
  );
});

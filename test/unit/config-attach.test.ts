// attach.interfaces entries: a name or glob (XDP judges incoming packets, as ever), or
// { name, ingress } choosing the hook; the first entry that matches an interface decides.

import { test } from "node:test";
import assert from "node:assert/strict";
import { formatDiagnostic, parsePolicy, PolicyError } from "../../src/config/index.ts";
import { planInterfaces } from "../../src/datapath/interfaces.ts";

const model = (attach: string) =>
  parsePolicy(`version: 1\nmode: prevent\nattach: ${attach}\n`, "p.yaml");

test("string entries keep their meaning; object entries say the ingress hook", () => {
  const m = model(`{ interfaces: [eth0, { name: "veth*", ingress: tc }, { name: "wg*" }] }`);
  assert.deepEqual(m.attach.interfaces.value, ["eth0", "veth*", "wg*"]);
  assert.deepEqual(m.attach.hooks, [
    { name: "eth0", ingress: "xdp" },
    { name: "veth*", ingress: "tc" },
    { name: "wg*", ingress: "xdp" },
  ]);
  assert.deepEqual(model("{}").attach.hooks, [{ name: "*", ingress: "xdp" }]);
});

test("the first matching entry decides an interface's hook; '*' skips lo", () => {
  const all = [
    { name: "lo", ifindex: 1 },
    { name: "eth0", ifindex: 2 },
    { name: "veth12", ifindex: 3 },
  ];
  const hooks = model(`{ interfaces: [{ name: "veth*", ingress: tc }, "*"] }`).attach.hooks;
  assert.deepEqual(planInterfaces(hooks, all), [
    { name: "eth0", ifindex: 2, ingress: "xdp" },
    { name: "veth12", ifindex: 3, ingress: "tc" },
  ]);
});

test("a bad entry is one clear error at its position", () => {
  const errors = (attach: string) => {
    try {
      model(attach);
    } catch (err) {
      assert.ok(err instanceof PolicyError);
      return err.diagnostics.map(formatDiagnostic);
    }
    return assert.fail("expected a PolicyError");
  };
  assert.deepEqual(errors(`{ interfaces: [{ name: "veth*", ingress: nft }] }`), [
    "p.yaml:3:50 attach.interfaces[0].ingress: must be one of xdp, tc, got 'nft'",
  ]);
  assert.deepEqual(errors(`{ interfaces: [{ name: averyveryverylongname0 }] }`), [
    "p.yaml:3:32 attach.interfaces[0].name: 'averyveryverylongname0' is longer than 15 characters, the kernel's limit",
  ]);
  assert.deepEqual(errors(`{ interfaces: [{ ingress: tc }] }`), [
    "p.yaml:3:24 attach.interfaces[0].name: missing required property 'name'",
  ]);
});

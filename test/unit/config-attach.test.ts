// attach.interfaces entries: a name or glob (moat chooses the ingress hook: tc on veth and
// virtio_net, XDP elsewhere), or { name, ingress } choosing it; the first entry that matches an
// interface decides.

import { test } from "node:test";
import assert from "node:assert/strict";
import { formatDiagnostic, parsePolicy, PolicyError } from "../../src/config/index.ts";
import { planInterfaces } from "../../src/datapath/interfaces.ts";
import { autoIngress } from "../../src/datapath/ingress-choice.ts";

const model = (attach: string) =>
  parsePolicy(`version: 1\nmode: prevent\nattach: ${attach}\n`, "p.yaml");

test("string entries and entries without ingress are auto; object entries may say the hook", () => {
  const m = model(
    `{ interfaces: [eth0, { name: "veth*", ingress: tc }, { name: "wg*" }, { name: "en*", ingress: xdp }, { name: "x", ingress: auto }] }`,
  );
  assert.deepEqual(m.attach.interfaces.value, ["eth0", "veth*", "wg*", "en*", "x"]);
  assert.deepEqual(m.attach.hooks, [
    { name: "eth0", ingress: "auto" },
    { name: "veth*", ingress: "tc" },
    { name: "wg*", ingress: "auto" },
    { name: "en*", ingress: "xdp" },
    { name: "x", ingress: "auto" },
  ]);
  assert.deepEqual(model("{}").attach.hooks, [{ name: "*", ingress: "auto" }]);
});

test("auto: tc ingress on veth and virtio_net, XDP on the rest, and it says why", () => {
  assert.deepEqual(autoIngress({ kind: "veth", driver: null }), {
    ingress: "tc",
    why: "auto: veth -> tc",
  });
  assert.deepEqual(autoIngress({ kind: null, driver: "virtio_net" }), {
    ingress: "tc",
    why: "auto: virtio_net -> tc",
  });
  assert.deepEqual(autoIngress({ kind: null, driver: "ixgbe" }), {
    ingress: "xdp",
    why: "auto: ixgbe -> xdp",
  });
  assert.deepEqual(autoIngress({ kind: "bridge", driver: null }), {
    ingress: "xdp",
    why: "auto: bridge -> xdp",
  });
});

test("the first matching entry decides an interface's hook; '*' skips lo", () => {
  const all = [
    { name: "lo", ifindex: 1 },
    { name: "eth0", ifindex: 2 },
    { name: "veth12", ifindex: 3 },
  ];
  const hooks = model(`{ interfaces: [{ name: "veth*", ingress: tc }, "*"] }`).attach.hooks;
  const facts = () => ({ kind: "veth", driver: null });
  assert.deepEqual(planInterfaces(hooks, all, facts), [
    { name: "eth0", ifindex: 2, ingress: "tc", why: "auto: veth -> tc" },
    { name: "veth12", ifindex: 3, ingress: "tc", why: "ingress: tc" },
  ]);
  const xdp = model(`{ interfaces: [{ name: "*", ingress: xdp }] }`).attach.hooks;
  assert.deepEqual(planInterfaces(xdp, all, facts), [
    { name: "eth0", ifindex: 2, ingress: "xdp", why: "ingress: xdp" },
    { name: "veth12", ifindex: 3, ingress: "xdp", why: "ingress: xdp" },
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
    "p.yaml:3:50 attach.interfaces[0].ingress: must be one of auto, xdp, tc, got 'nft'",
  ]);
  assert.deepEqual(errors(`{ interfaces: [{ name: averyveryverylongname0 }] }`), [
    "p.yaml:3:32 attach.interfaces[0].name: 'averyveryverylongname0' is longer than 15 characters, the kernel's limit",
  ]);
  assert.deepEqual(errors(`{ interfaces: [{ ingress: tc }] }`), [
    "p.yaml:3:24 attach.interfaces[0].name: missing required property 'name'",
  ]);
});

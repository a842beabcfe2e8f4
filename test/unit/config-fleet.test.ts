// The policy's fleet section: defaults filled in, and each bad value one error at its position.
import { test } from "node:test";
import assert from "node:assert/strict";
import { formatDiagnostic, parsePolicy, PolicyError } from "../../src/config/index.ts";

const model = (fleet: string) =>
  parsePolicy(`version: 1\nmode: prevent\nfleet: ${fleet}\n`, "p.yaml");

function errors(fleet: string): string[] {
  try {
    model(fleet);
  } catch (err) {
    assert.ok(err instanceof PolicyError);
    return err.diagnostics.map(formatDiagnostic);
  }
  return assert.fail("expected a PolicyError");
}

test("a fleet section gets the default subject and state file", () => {
  const m = model(`{ url: "nats://n0:4222", events: {}, policy: { bucket: moat-policy } }`);
  assert.deepEqual(m.fleet?.value, {
    url: "nats://n0:4222",
    events: { subject: "moat.events" },
    policy: { bucket: "moat-policy", stateFile: "/var/lib/moat/fleet-policy.json" },
  });
  const full = model(
    `{ url: "tls://n0:4222", host: web-1_a, nkey_seed_file: /etc/moat/fleet.nk, events: { subject: fleet.ev }, policy: { bucket: b, state_file: /var/lib/x.json } }`,
  );
  assert.deepEqual(full.fleet?.value, {
    url: "tls://n0:4222",
    host: "web-1_a",
    nkeySeedFile: "/etc/moat/fleet.nk",
    events: { subject: "fleet.ev" },
    policy: { bucket: "b", stateFile: "/var/lib/x.json" },
  });
  assert.equal(
    model(`{ url: "nats://n0:4222" }`).fleet?.value.events,
    undefined,
    "no events unless asked",
  );
});

test("bad fleet values are errors at their position", () => {
  assert.deepEqual(errors(`{ url: "http://n0:4222" }`), [
    "p.yaml:3:15 fleet.url: 'http://n0:4222' must be a nats:// or tls:// URL",
  ]);
  assert.deepEqual(errors(`{ url: "nats://n0", host: web1.example }`), [
    "p.yaml:3:34 fleet.host: 'web1.example' must be letters, digits, '_' and '-' only",
  ]);
  assert.deepEqual(errors(`{ url: "nats://n0", nkey_seed_file: fleet.nk }`), [
    "p.yaml:3:44 fleet.nkey_seed_file: 'fleet.nk' must be an absolute path",
  ]);
  assert.deepEqual(errors(`{ url: "nats://n0", events: { subject: "moat.*" } }`), [
    "p.yaml:3:47 fleet.events.subject: 'moat.*' is not a NATS subject without wildcards",
  ]);
  assert.deepEqual(errors(`{ url: "nats://n0", policy: { bucket: "a.b" } }`), [
    "p.yaml:3:46 fleet.policy.bucket: 'a.b' is not a bucket name",
  ]);
  assert.deepEqual(
    errors(`{ url: "nats://n0", polcy: {} }`).length,
    1,
    "an unknown key is an error",
  );
});

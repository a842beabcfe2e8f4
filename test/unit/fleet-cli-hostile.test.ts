// `moat fleet events` and `moat fleet status` read what every host wrote: a host writes its own
// subject and status key, so one that is not moat (or not moat any more) can write anything
// there. What cannot be read as moat's is skipped; the command goes on for the other hosts.
import { test } from "node:test";
import assert from "node:assert/strict";
import type { NatsConnection } from "nats";
import { printEvents } from "../../src/cli/commands/fleet-events.ts";
import { printStatus } from "../../src/cli/commands/fleet-status.ts";

const fleet = {
  servers: [],
  stream: "MOAT_EVENTS",
  bucket: "moat-policy",
  subject: "moat.events",
  hosts: [],
} as unknown as Parameters<typeof printStatus>[1];

const bytes = (text: string) => new TextEncoder().encode(text);

const goodEvent = JSON.stringify({
  time: "2026-12-06T00:00:00.000Z",
  type: "blocked",
  mode: "prevent",
  rule: "r",
  direction: "egress",
  protocol: "tcp",
  local: { ip: "10.0.0.1", port: 40000 },
  remote: { ip: "203.0.113.9", port: 443 },
  interface: null,
  process: null,
  layer7: null,
  connection: null,
  reason: "new",
  verdict: "blocked",
  hook: "tc",
  generation: 1,
});

test("fleet events: a host's messages that are not events are skipped", async () => {
  const messages = ["null", "{}", '{"type":"blocked"}', "garbage", goodEvent].map((m, i) => ({
    subject: `moat.events.web${i}`,
    data: bytes(m),
    info: { pending: 4 - i },
  }));
  const nc = {
    jetstream: () => ({
      consumers: {
        get: async () => ({
          fetch: async () =>
            (async function* () {
              yield* messages;
            })(),
        }),
      },
    }),
  } as unknown as NatsConnection;
  const lines: string[] = [];
  await printEvents(nc, fleet, {}, { out: (l: string) => lines.push(l), err: () => {} } as never);
  assert.equal(lines.length, 1, lines.join("\n"));
  assert.match(lines[0] ?? "", /^web4 .*203\.0\.113\.9/);
});

test("fleet status: a last event that is not JSON and a report without errors are shown, not thrown", async () => {
  const nc = {
    jetstreamManager: async () => ({
      streams: {
        info: async () => ({ state: { subjects: { "moat.events.web1": 1 } } }),
        getMessage: async () => ({ time: new Date(0), data: bytes("garbage") }),
      },
    }),
    jetstream: () => ({
      views: {
        kv: async () => ({
          keys: async () =>
            (async function* () {
              yield "status.web1";
            })(),
          get: async (k: string) =>
            k.startsWith("status")
              ? { operation: "PUT", revision: 2, json: () => ({ result: "refused", revision: 3 }) }
              : null,
        }),
      },
    }),
  } as unknown as NatsConnection;
  const lines: string[] = [];
  await printStatus(nc, fleet, false, (l) => lines.push(l));
  assert.equal(lines.length, 2, lines.join("\n"));
  assert.match(lines[1] ?? "", /^web1\t1\t1970-01-01T00:00:00\.000Z\t.*refused revision 3: /);
});

// A rule's max_duration with real traffic, moat's daemon guarding namespace b. In detect mode
// (the policy's, or the rule's own) a connection held past it goes on untouched and is reported
// once as `detected` with reason max_duration; in prevent mode both ends are reset and the cut
// is reported as `closed`.
import { test } from "node:test";
import assert from "node:assert/strict";
import { startMoatLab, type MoatLab } from "../helpers/moat-lab.ts";
import type { Lab } from "../helpers/netns.ts";
import { spawnLines, type LineChild } from "../helpers/child.ts";
import { guardedInterface } from "../helpers/ingress-mode.ts";
import { storedEvents, until } from "../helpers/stored-events.ts";
import { NODE } from "../helpers/paths.ts";

const PORT = 8080;
const MAX_DURATION_S = 2;

/** Echoes every line back; ends with its client. */
const ECHO_SERVER = `
require("node:net").createServer((s) => {
  s.on("data", (d) => s.write(d));
  s.on("error", () => {});
}).listen(${PORT}, () => console.log("listening"));
`;

/** One connection: each stdin line is sent, "end" closes it; what comes back is printed. */
const CLIENT = (host: string) => `
const s = require("node:net").connect(${PORT}, "${host}", () => console.log("connected"));
s.on("data", (d) => { for (const l of String(d).split("\\n")) if (l) console.log("client got " + l); });
s.on("error", (e) => console.log("client error " + e.code));
s.on("close", () => console.log("client closed"));
require("node:readline")
  .createInterface({ input: process.stdin })
  .on("line", (l) => (l === "end" ? s.end() : s.write(l + "\\n")));
`;

function policy(
  lab: Lab & { auditPath: string },
  mode: { policy: "detect" | "prevent"; rule?: "detect" },
  ingress?: "xdp" | "tc",
): string {
  return `version: 1
mode: ${mode.policy}
defaults: { ingress: block, egress: allow }
attach: { interfaces: [${guardedInterface(lab.ifB, ingress)}] }
logging: { audit: { path: ${lab.auditPath} } }
rules:
  - name: web
    direction: ingress
    action: allow${mode.rule ? `\n    mode: ${mode.rule}` : ""}
    layer4: { protocol: tcp, port: [${PORT}], max_duration: ${MAX_DURATION_S}s }
  - name: icmpv6
    direction: ingress
    action: allow
    layer4: { protocol: icmpv6 }
`;
}

interface StoredEvent {
  type: string;
  rule: string;
  reason: string;
  verdict: string;
  mode: string;
  connection: string | null;
  local: { port: number };
}

const ofConnection = (lab: MoatLab, id: string): StoredEvent[] =>
  storedEvents<StoredEvent>(lab).filter((e) => e.connection === id);

/** The echo server in b and a client in a, connected, its first line echoed. */
async function connected(lab: MoatLab): Promise<{ server: LineChild; client: LineChild }> {
  const server = spawnLines("ip", ["netns", "exec", lab.b, NODE, "-e", ECHO_SERVER]);
  await server.waitFor(/^listening$/);
  const client = spawnLines("ip", ["netns", "exec", lab.a, NODE, "-e", CLIENT(lab.v4.b)]);
  await client.waitFor(/^connected$/);
  client.send("hello");
  await client.waitFor(/^client got hello$/);
  return { server, client };
}

/** Holds the connection idle until its rule's max_duration has passed. */
const pastMaxDuration = () => new Promise((r) => setTimeout(r, (MAX_DURATION_S + 1) * 1000));

/** What the client sees of `line` sent now: its echo, or an error. */
async function sendAndRead(client: LineChild, line: string): Promise<string> {
  client.send(line);
  return client.waitFor(new RegExp(`^client (got ${line}|error .*|closed)$`), 10_000);
}

/** The first stored event of type `type` and reason `reason` of rule web, to local port PORT. */
async function firstReport(lab: MoatLab, type: string, reason: string): Promise<StoredEvent> {
  return until(`a ${type} ${reason} event of rule web`, () =>
    storedEvents<StoredEvent>(lab).find(
      (e) => e.type === type && e.reason === reason && e.rule === "web" && e.local.port === PORT,
    ),
  );
}

for (const [what, mode, ingress] of [
  ["detect mode at xdp", { policy: "detect" }, "xdp"],
  ["detect mode at tc ingress", { policy: "detect" }, "tc"],
  ["the rule's own detect mode under a prevent policy", { policy: "prevent", rule: "detect" }],
] as const)
  test(
    `${what}: a connection past max_duration goes on, reported once as detected`,
    { timeout: 180_000 },
    async (t) => {
      const lab = await startMoatLab(t.name, (l) => policy(l, mode, ingress), ["tcp:80"]);
      let peers: { server: LineChild; client: LineChild } | undefined;
      try {
        peers = await connected(lab);
        const { client } = peers;
        await pastMaxDuration();
        assert.equal(
          await sendAndRead(client, "after-deadline"),
          "client got after-deadline",
          "the connection is not cut in detect mode",
        );
        const detected = await firstReport(lab, "detected", "max_duration");
        assert.equal(detected.mode, "detect");
        const id = detected.connection;
        assert.ok(id, "the event names the connection");
        for (const line of ["later-1", "later-2", "later-3"])
          assert.equal(await sendAndRead(client, line), `client got ${line}`);
        client.send("end");
        await client.waitFor(/^client closed$/);
        // the connection's close comes after every report of its packets
        await until("the connection's close", () =>
          ofConnection(lab, id).find((e) => e.type === "closed"),
        );
        const reports = ofConnection(lab, id).map((e) => `${e.type} ${e.reason}`);
        assert.deepEqual(reports, ["detected max_duration", "closed fin"], "reported once");
        assert.ok(!client.lines.some((l) => l.startsWith("client error")), client.lines.join("\n"));
      } finally {
        peers?.client.kill();
        peers?.server.kill();
        await lab.close();
      }
    },
  );

test(
  "prevent mode: a connection past max_duration is reset and its cut reported",
  { timeout: 180_000 },
  async (t) => {
    const lab = await startMoatLab(t.name, (l) => policy(l, { policy: "prevent" }), ["tcp:80"]);
    let peers: { server: LineChild; client: LineChild } | undefined;
    try {
      peers = await connected(lab);
      await pastMaxDuration();
      assert.equal(await sendAndRead(peers.client, "after-deadline"), "client error ECONNRESET");
      const closed = await firstReport(lab, "closed", "max_duration");
      assert.equal(closed.mode, "prevent");
      assert.ok(
        !storedEvents<StoredEvent>(lab).some((e) => e.type === "detected"),
        "nothing detected in prevent mode",
      );
    } finally {
      peers?.client.kill();
      peers?.server.kill();
      await lab.close();
    }
  },
);

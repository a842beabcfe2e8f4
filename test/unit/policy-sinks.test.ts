// A policy's otel and event_publisher sections become working sinks; a webhook key others could
// read refuses the policy before anything starts.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createServer, type IncomingHttpHeaders } from "node:http";
import type { AddressInfo } from "node:net";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parsePolicy, PolicyError, formatDiagnostic } from "../../src/config/index.ts";
import { loadPolicySinks, sinksFromPolicy } from "../../src/observe/policy-sinks.ts";
import { verify } from "../../src/observe/publish/signature.ts";
import { startOtlpReceiver } from "../helpers/otlp-receiver.ts";
import { moatEvent, snapshot } from "../helpers/moat-events.ts";

const policy = (otel: string, hook: string, secret: string) => `version: 1
otel:
  endpoint: ${otel}
event_publisher:
  webhooks:
    - { url: "${hook}", types: [blocked], secret_file: ${secret} }
  nats: { url: "nats://127.0.0.1:1", subject: moat.events }
`;

test("otel, a signed webhook and NATS from the policy, each getting the events", async () => {
  const dir = mkdtempSync(join(tmpdir(), "moat-sinks-"));
  const otlp = await startOtlpReceiver();
  const got: { headers: IncomingHttpHeaders; body: string }[] = [];
  const hookServer = createServer((req, res) => {
    let body = "";
    req.on("data", (c: Buffer) => (body += c.toString()));
    req.on("end", () => (got.push({ headers: req.headers, body }), res.end()));
  });
  await new Promise<void>((r) => hookServer.listen(0, "127.0.0.1", r));
  const hookUrl = `http://127.0.0.1:${(hookServer.address() as AddressInfo).port}/moat`;
  const secret = join(dir, "hook.key");
  writeFileSync(secret, "policy-key\n", { mode: 0o600 });
  const model = parsePolicy(policy(otlp.url, hookUrl, secret), "p.yaml");
  await loadPolicySinks(model);
  const sinks = sinksFromPolicy(model, () => snapshot());
  try {
    assert.deepEqual(
      sinks.sinks.map((s) => s.name),
      ["otel", `webhook ${hookUrl}`, "nats 127.0.0.1:1 moat.events"],
    );
    const [otel, hook] = sinks.sinks;
    assert.ok(otel && hook);
    const events = [
      moatEvent({ connection: "a" }),
      moatEvent({ type: "blocked", verdict: "blocked", connection: "b" }),
    ];
    await otel.write(events);
    await hook.write(events);
    assert.deepEqual(
      otlp.logs.map((l) => l.attributes["moat.connection.id"]),
      ["a", "b"],
    );
    assert.equal(got.length, 1);
    const [d] = got;
    assert.ok(d);
    assert.deepEqual(
      (JSON.parse(d.body) as { events: { connection: string }[] }).events.map((e) => e.connection),
      ["b"],
      "only the types the policy lists",
    );
    const headers = {
      signature: String(d.headers["x-moat-signature"]),
      timestamp: String(d.headers["x-moat-timestamp"]),
    };
    assert.ok(verify(Buffer.from("policy-key"), headers, d.body), "signed with the key file's key");
  } finally {
    await sinks.close();
    await otlp.close();
    hookServer.closeAllConnections();
    hookServer.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a webhook key file others can read refuses the policy; a relative one is a policy error", () => {
  const dir = mkdtempSync(join(tmpdir(), "moat-sinks-"));
  try {
    const secret = join(dir, "hook.key");
    writeFileSync(secret, "k", { mode: 0o644 });
    const model = parsePolicy(
      policy("http://127.0.0.1:4318", "http://127.0.0.1:9/h", secret),
      "p.yaml",
    );
    assert.throws(
      () => sinksFromPolicy(model, () => snapshot()),
      /secret file .*hook\.key is readable or writable by others \(mode 644\)/,
    );
    assert.throws(
      () =>
        parsePolicy(policy("http://127.0.0.1:4318", "http://127.0.0.1:9/h", "keys/hook"), "p.yaml"),
      (e: unknown) =>
        e instanceof PolicyError &&
        e.diagnostics
          .map(formatDiagnostic)
          .some((l) =>
            l.includes(
              "event_publisher.webhooks[0].secret_file: 'keys/hook' must be an absolute path",
            ),
          ),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a webhook URL holding credentials is refused at its position, without echoing them", () => {
  const file = "p.yaml";
  let lines: string[] = [];
  try {
    parsePolicy(
      policy(
        "http://127.0.0.1:4318",
        "https://moat:S3cretPW@siem.example/moat",
        "/etc/moat/hook.key",
      ),
      file,
    );
  } catch (e) {
    if (!(e instanceof PolicyError)) throw e;
    lines = e.diagnostics.filter((d) => d.severity !== "warning").map(formatDiagnostic);
  }
  assert.equal(lines.length, 1, lines.join("\n"));
  assert.match(
    lines[0] ?? "",
    /^p\.yaml:6:14 event_publisher\.webhooks\[0\]\.url: 'https:\/\/siem\.example\/moat' must not hold a user name or password: moat does not send them; sign deliveries with secret_file/,
  );
  assert.ok(!(lines[0] ?? "").includes("S3cretPW"), lines[0]);
});

// A tls:// NATS URL means TLS: a server (or someone in the path) that answers without offering it
// gets no login, neither the fleet's nkey signature nor an event publisher's events.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createServer, type AddressInfo, type Server } from "node:net";
import { nkeys } from "nats";
import { connectFleet } from "../../src/fleet/index.ts";
import { NatsSink } from "../../src/observe/publish/nats.ts";

/** A NATS server look-alike without TLS: what clients send it, in plain text. */
async function plainServer(): Promise<{ port: number; seen: () => string; server: Server }> {
  let seen = "";
  const server = createServer((s) => {
    s.write(
      'INFO {"server_id":"PLAIN","version":"2.10.0","proto":1,"max_payload":1048576,"headers":true,"auth_required":true,"nonce":"N1","tls_required":false}\r\n',
    );
    s.on("data", (d) => {
      seen += d.toString();
      s.write("+OK\r\nPONG\r\n");
    });
    s.on("error", () => {});
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { port: (server.address() as AddressInfo).port, seen: () => seen, server };
}

test("the fleet's tls:// URL refuses a server without TLS before any login", async (t) => {
  const plain = await plainServer();
  t.after(() => plain.server.close());
  const seed = new TextDecoder().decode(nkeys.createUser().getSeed());
  // a connection made is closed at once: the test must not hang on it
  const attempt = connectFleet({ url: `tls://127.0.0.1:${plain.port}`, seed, host: "web1" }).then(
    async (nc) => {
      await nc.close();
      throw new Error("connected in plain text");
    },
  );
  await assert.rejects(attempt, /tls/i);
  assert.doesNotMatch(plain.seen(), /CONNECT/, "no login was sent in plain text");
});

test("an event publisher's tls:// URL sends nothing to a server without TLS", async (t) => {
  const plain = await plainServer();
  t.after(() => plain.server.close());
  const publisher = new NatsSink({
    url: `tls://127.0.0.1:${plain.port}`,
    subject: "moat.events",
    reconnectWaitMs: 100,
  });
  t.after(() => publisher.close());
  await new Promise((resolve) => setTimeout(resolve, 600));
  assert.doesNotMatch(plain.seen(), /CONNECT/);
});

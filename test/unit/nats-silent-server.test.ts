// A NATS server that accepts connections and never sends its INFO: every attempt that times out
// must give its socket back (the client library alone leaves it open, one more each retry).
import { test } from "node:test";
import assert from "node:assert/strict";
import { createServer, type Socket } from "node:net";
import { connect } from "nats";
import { connectionOptions } from "../../src/fleet/connection.ts";
import { untilTrue } from "../helpers/until.ts";

test("attempts to a server that never speaks leave no socket open", async (t) => {
  const open = new Set<Socket>();
  let accepted = 0;
  const server = createServer((s) => {
    accepted++;
    open.add(s);
    s.on("close", () => open.delete(s));
    s.on("error", () => {});
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  t.after(() => {
    for (const s of open) s.destroy();
    server.close();
  });
  const port = (server.address() as { port: number }).port;
  for (let i = 0; i < 3; i++) {
    // moat's connection options, with a short wait for the server's INFO
    const options = { ...connectionOptions({ url: `nats://127.0.0.1:${port}` }), timeout: 300 };
    const err = await connect(options).then(
      () => null,
      (e: Error) => e,
    );
    assert.ok(err, "no connection to a server that never sends INFO");
  }
  assert.ok(accepted >= 3, `the server saw ${accepted} attempts`);
  await untilTrue("every attempt's socket closed", () => open.size === 0, 5_000);
});

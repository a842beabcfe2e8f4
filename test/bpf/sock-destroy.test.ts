// sockDestroy (SOCK_DESTROY by a connection's tuple) cuts that connection only: once it is gone,
// the kernel's lookup would find the socket that takes new connections on the port (a TCP
// listener, an unconnected UDP socket), and destroying that would stop the server for everyone.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createSocket } from "node:dgram";
import { connect, createServer, type AddressInfo, type Socket } from "node:net";
import { native } from "../../src/datapath/addon.ts";

const LOOPBACK = Buffer.from([127, 0, 0, 1]);

const connected = (port: number) =>
  new Promise<Socket>((resolve, reject) => {
    const c = connect(port, "127.0.0.1", () => resolve(c));
    c.once("error", reject);
  });

test("the tuple of a TCP connection that is gone destroys nothing; the listener keeps accepting", async (t) => {
  const accepted: Socket[] = [];
  const server = createServer((s) => accepted.push(s));
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  t.after(() => server.close());
  const port = (server.address() as AddressInfo).port;
  const client = await connected(port);
  const clientPort = client.localPort ?? 0;
  while (accepted.length < 1) await new Promise((r) => setTimeout(r, 10));
  // the live connection, named from the server's side, is destroyed
  const tuple = {
    family: 4 as const,
    protocol: 6,
    local: LOOPBACK,
    localPort: port,
    remote: LOOPBACK,
    remotePort: clientPort,
  };
  const closed = new Promise((r) => client.once("close", r));
  client.on("error", () => {});
  accepted[0]!.on("error", () => {});
  assert.equal(native().sockDestroy(tuple), true, "the connection is destroyed");
  await closed;
  // now gone: the same tuple names no connection, and the listener stays
  assert.equal(native().sockDestroy(tuple), false, "nothing left to destroy");
  const again = await connected(port);
  again.destroy();
});

test("the tuple of a UDP peer of an unconnected server socket destroys nothing", async (t) => {
  const server = createSocket("udp4");
  await new Promise<void>((r) => server.bind(0, "127.0.0.1", r));
  t.after(() => server.close());
  const port = server.address().port;
  const got = new Promise<string>((r) => server.once("message", (m) => r(m.toString())));
  assert.equal(
    native().sockDestroy({
      family: 4 as const,
      protocol: 17,
      local: LOOPBACK,
      localPort: port,
      remote: LOOPBACK,
      remotePort: 40_999,
    }),
    false,
  );
  const client = createSocket("udp4");
  t.after(() => client.close());
  client.send("still here", port, "127.0.0.1");
  assert.equal(await got, "still here");
});

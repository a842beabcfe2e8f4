// A UDP redirect whose target stops while a client's unconnected socket is still sending to it
// (docs/redirect.md, docs/policy.md `failure.helper`): the socket's next sendto() gets what a new
// socket would. In detect mode the datagram goes on to where it was going, reported `detected`; in
// prevent mode (failure.helper: block) sendto() fails with EPERM, reported `blocked`.
import { test } from "node:test";
import assert from "node:assert/strict";
import { send, startUdpRedirectLab, stopProxy } from "../helpers/udp-redirect-lab.ts";

const PORT = 18111;

test("a UDP redirect's target stops between two sendto() of one socket", async (t) => {
  const redirect = await startUdpRedirectLab(t, "redirstop", "redirect-target-stops", PORT);
  const lab = redirect.lab;
  const a = lab.v4.a.replaceAll(".", "\\.");

  await t.test("detect: the datagram goes where it was going, reported detected", async () => {
    const proxy = await redirect.startProxy();
    const client = await redirect.startClient();
    assert.equal(await send(client), "proxy");
    await stopProxy(proxy);
    assert.equal(await send(client), "peer", "the target stopped: not redirected, not refused");
    await lab.daemon.waitFor(
      new RegExp(
        `DETECTED egress udp \\S+ -> ${a}:5353 by rule default \\(python3 pid ${client.pid}\\), redirect udp-proxy: 127\\.0\\.0\\.1:${PORT} is unavailable`,
      ),
    );
    assert.equal(await send(client), "peer");
    client.child.kill();
  });

  await t.test("prevent: sendto() fails with EPERM, reported blocked", async () => {
    await redirect.reload("prevent");
    const proxy = await redirect.startProxy();
    const client = await redirect.startClient();
    assert.equal(await send(client), "proxy");
    await stopProxy(proxy);
    assert.equal(await send(client), "EPERM");
    await lab.daemon.waitFor(
      new RegExp(
        `BLOCKED egress udp \\S+ -> ${a}:5353 by rule default \\(python3 pid ${client.pid}\\), redirect udp-proxy: 127\\.0\\.0\\.1:${PORT} is unavailable`,
      ),
    );
    client.child.kill();
  });
});

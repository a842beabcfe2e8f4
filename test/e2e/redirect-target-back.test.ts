// A UDP redirect whose target stops and comes back while a client's unconnected socket keeps
// sending (docs/redirect.md, "Is it there?"): while the target is down each sendto() gets what
// the redirect's failure setting says, reported once for the socket; once it is back, the next
// sendto() goes to it again.
import { test } from "node:test";
import assert from "node:assert/strict";
import { send, startUdpRedirectLab, stopProxy } from "../helpers/udp-redirect-lab.ts";

const PORT = 18113;

test("a UDP redirect's target stops, then comes back, between sendto() of one socket", async (t) => {
  const redirect = await startUdpRedirectLab(t, "redirback", "redirect-target-back", PORT);
  const lab = redirect.lab;
  const a = lab.v4.a.replaceAll(".", "\\.");

  /** Sent while the target is there, while it is down (to the peer), and once it is back. */
  const backAgain = async () => {
    const proxy = await redirect.startProxy();
    const client = await redirect.startClient();
    assert.equal(await send(client), "proxy");
    await stopProxy(proxy);
    assert.equal(await send(client), "peer");
    assert.equal(await send(client), "peer");
    const again = await redirect.startProxy();
    try {
      assert.equal(await send(client), "proxy", "the target is back: redirected again");
    } finally {
      await stopProxy(again);
      client.child.kill();
    }
  };

  await t.test("detect: the target is back: the next sendto() goes to it", backAgain);

  await t.test(
    "prevent, on_unavailable allow: the target is back: the next sendto() goes to it",
    async () => {
      await redirect.reload("prevent", "on_unavailable: allow");
      await backAgain();
    },
  );

  await t.test(
    "prevent, block: refused while down, reported once; redirected once back",
    async () => {
      await redirect.reload("prevent");
      const proxy = await redirect.startProxy();
      const client = await redirect.startClient();
      const redirected = new RegExp(
        `ALLOWED egress udp \\S+ -> ${a}:5353 .*\\(python3 pid ${client.pid}\\), redirected to 127\\.0\\.0\\.1:${PORT} by redirect udp-proxy`,
      );
      assert.equal(await send(client), "proxy");
      await lab.daemon.waitFor(redirected);
      await stopProxy(proxy);
      assert.equal(await send(client), "EPERM");
      assert.equal(await send(client), "EPERM");
      assert.equal(await send(client), "EPERM");
      const again = await redirect.startProxy();
      try {
        assert.equal(await send(client), "proxy", "the target is back: redirected again");
        // the events come in order: the outage's are all in before the redirect that ends it
        await lab.daemon.waitFor(redirected);
        const unavailable = new RegExp(
          `BLOCKED egress udp \\S+ -> ${a}:5353 by rule default \\(python3 pid ${client.pid}\\), redirect udp-proxy: 127\\.0\\.0\\.1:${PORT} is unavailable`,
        );
        assert.equal(
          lab.daemon.lines.filter((l) => unavailable.test(l)).length,
          1,
          "the outage is reported once for the socket",
        );
      } finally {
        await stopProxy(again);
        client.child.kill();
      }
    },
  );
});

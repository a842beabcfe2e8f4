// The web console against a running daemon: `moat console` prints a one-time link (the daemon
// opens a loopback listener for it), a real browser signs in with it, and the live view shows
// an nc probe the policy blocks, with the rule that blocked it; another tab, which has the cookie
// but not the tab's session token, must sign in again. The browser runs in the daemon's
// namespace, where that loopback listener is.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { startMoatLab } from "../helpers/moat-lab.ts";
import { MOAT } from "../helpers/paths.ts";
import { openBrowser } from "../helpers/browser.ts";

test("moat console's link opens the live view, which shows a blocked nc probe and its rule", async (t) => {
  const lab = await startMoatLab(
    t.name,
    (l) => `version: 1
mode: prevent
defaults: { ingress: block, egress: allow }
attach: { interfaces: [${l.ifB}] }
rules:
  - name: ssh
    direction: ingress
    action: allow
    layer4: { protocol: tcp, port: [22] }
  - name: no-telnet
    direction: ingress
    action: block
    layer4: { protocol: tcp, port: [23] }
`,
  );
  t.after(() => lab.close());
  const r = spawnSync(MOAT, ["console", "--api", `unix:${lab.apiSocket}`], {
    encoding: "utf8",
    timeout: 20_000,
  });
  assert.equal(r.status, 0, r.stderr);
  const url = /^http:\/\/127\.0\.0\.1:\d+\/console\/login#\S+$/m.exec(r.stdout)?.[0];
  assert.ok(url, r.stdout);
  assert.match(r.stdout, /the session may: read, events/);

  const browser = await openBrowser({ netns: lab.b });
  t.after(() => browser.close());
  const { page } = browser;
  await page.goto(url);
  await page.getByText(/events in \d+ flows/).waitFor();

  // the probe: nc from the peer namespace to port 23, which no-telnet blocks
  assert.notEqual(lab.inA("nc", ["-z", "-w", "1", lab.v4.b, "23"]), 0, "port 23 is blocked");
  const row = page.locator("#flow-rows tr", { hasText: lab.v4.a }).filter({ hasText: "23/tcp" });
  await row.waitFor();
  assert.match(await row.innerText(), /23\/tcp\s+blocked\s+no-telnet/);
  await page.locator("#rules tbody tr", { hasText: "no-telnet" }).waitFor();

  // the session's token is in no cookie: it stays in the tab that signed in, so another tab
  // (which the cookie reaches) is sent to sign in again
  const cookies = await browser.context.cookies();
  assert.deepEqual(
    cookies.map((c) => `${c.name} httpOnly=${c.httpOnly}`),
    ["moat_console httpOnly=true"],
  );
  const newTab = await browser.context.newPage();
  await newTab.goto(new URL("/console/", url).href);
  await newTab.waitForURL(/\/console\/login$/);
  await newTab.getByText(/run 'moat console'/).waitFor();
  await newTab.close();

  // the same link does not work twice
  const second = await browser.context.newPage();
  await second.goto(url);
  await second.getByText(/unknown, used or expired/).waitFor();
});

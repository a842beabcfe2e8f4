// The playground's "What if" panel in a real browser, served by the API with a real history
// file and the daemon's replayer: the editor's draft replayed over stored blocks shows them as
// newly allowed, by remote and port; a session without the policy scope sees no Apply; one with
// it sees what applying changes, confirms, and the apply goes through PUT /v1/policy named by the
// session; a write without the session's token is refused. axe finds nothing serious; 360 px wide
// nothing scrolls sideways. Screenshots go to build/screenshots/.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startApi } from "../../src/api/server.ts";
import { EventPipeline } from "../../src/observe/pipeline.ts";
import { HistoryStore } from "../../src/observe/history/store.ts";
import { historyReplayer } from "../../src/daemon/history-replay.ts";
import { testControl } from "../helpers/api-control.ts";
import { fakeEvent } from "../helpers/events.ts";
import { mintConsoleUrl } from "../helpers/console-session.ts";
import { openBrowser } from "../helpers/browser.ts";
import { setPolicy } from "../helpers/playground-page.ts";
import { axeSerious, horizontalOverflow } from "../helpers/page-checks.ts";

const RUNNING = `version: 1
mode: prevent
defaults: { ingress: block, egress: allow }
rules:
  - name: ssh
    direction: ingress
    action: allow
    layer4: { protocol: tcp, port: [22] }
`;
const DRAFT = `${RUNNING}  - name: telnet
    direction: ingress
    action: allow
    layer4: { protocol: tcp, port: [23] }
`;

test("What if: the draft over stored history, then Apply through the API for a session that may", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "moat-whatif-"));
  const historyPath = join(dir, "history.db");
  const store = new HistoryStore(historyPath);
  store.insert(
    [1, 2, 3].map((n) =>
      fakeEvent({
        time: new Date(Date.now() - n * 60_000).toISOString(),
        local: { ip: "10.0.0.1", port: 23 },
        remote: { ip: "203.0.113.9", port: 40000 + n },
        connection: `c${n}`,
      }),
    ),
  );
  store.close();
  const applied: { text: string; who: string }[] = [];
  const pipeline = new EventPipeline();
  const control = testControl(pipeline, {
    policy: () => ({
      path: join(dir, "policy.yaml"),
      text: RUNNING,
      hash: "ab",
      generation: 3,
      mode: "prevent",
    }),
    replay: historyReplayer({
      historyPath,
      policyPath: join(dir, "policy.yaml"),
      runningText: () => RUNNING,
    }),
    apply: (text, who) => {
      applied.push({ text, who });
      return { ok: true, generation: 4, errors: [] };
    },
  });
  const socketPath = join(dir, "api.sock");
  const api = await startApi(control, [{ listen: `unix:${socketPath}` }]);
  const browser = await openBrowser();
  t.after(async () => {
    await browser.close();
    await api.close();
    await pipeline.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const { page } = browser;
  // the console's CSP allows no evaluated code: the bundle must run without any
  const pageErrors: string[] = [];
  page.on("pageerror", (e) => pageErrors.push(e.message));
  await page.setViewportSize({ width: 1280, height: 1000 });
  const signIn = async (scopes: string[]) => {
    const { url } = await mintConsoleUrl({ socketPath }, scopes);
    await page.goto(url);
    await page.waitForURL(/\/console\/$/);
    const origin = new URL(url).origin;
    await page.goto(`${origin}/console/playground.html#policy=running`);
    await page.waitForSelector("body[data-ready]");
    // read with the tab's token: the page shows the running policy, not an error
    await page.getByText("The policy the daemon is running.").waitFor();
    return origin;
  };
  const newlyAllowed = page.locator('#whatif-result [data-change="allowed"]');

  // read and events: the replay, no Apply
  await signIn(["read", "events"]);
  await page.locator("#whatif-pane:not([hidden])").waitFor();
  await setPolicy(page, DRAFT);
  await page.getByRole("button", { name: "Replay history" }).click();
  await newlyAllowed.getByRole("heading", { name: "Newly allowed: 3" }).waitFor();
  assert.match(
    await newlyAllowed.locator("li").first().innerText(),
    /^3 connections - ← 203\.0\.113\.9 23\/tcp \(was blocked 3\), by telnet/,
  );
  assert.equal(await page.locator("#apply-box").isHidden(), true, "no Apply without 'policy'");
  // nor through the API, session token and all (the tab keeps it in sessionStorage, no cookie)
  const unscoped = await page.evaluate(async () => {
    const { sessionStorage, document } = globalThis as unknown as {
      sessionStorage: { getItem(key: string): string | null };
      document: { cookie: string };
    };
    if (document.cookie.includes("moat_csrf")) throw new Error("the token is in a cookie");
    const token = sessionStorage.getItem("moat-console-token") ?? "";
    const res = await fetch("/v1/policy", {
      method: "PUT",
      headers: { "x-moat-csrf": token },
      body: "version: 1\n",
    });
    return { status: res.status, body: await res.text() };
  });
  assert.equal(unscoped.status, 403);
  assert.match(unscoped.body, /EFORBIDDEN.*lacks the scope 'policy'/);

  // read, events and policy: what applying changes, a confirmation, the apply
  const origin = await signIn(["read", "events", "policy"]);
  await setPolicy(page, DRAFT);
  await page.getByRole("button", { name: "Replay history" }).click();
  await newlyAllowed.getByRole("heading", { name: "Newly allowed: 3" }).waitFor();
  await page.locator("#apply-changes li", { hasText: "rules added: telnet" }).waitFor();
  mkdirSync("build/screenshots", { recursive: true });
  await page.screenshot({ path: "build/screenshots/playground-whatif.png", fullPage: true });
  assert.deepEqual(await axeSerious(page), []);
  await page.getByRole("button", { name: "Apply this policy…" }).click();
  assert.equal(applied.length, 0, "the first click asks for a confirmation");
  await page.getByRole("button", { name: "Confirm: apply to the running daemon" }).click();
  await page.locator("#apply-status", { hasText: "Applied: generation 4." }).waitFor();
  assert.equal(applied.length, 1);
  assert.equal(applied[0]?.text, DRAFT);
  assert.match(applied[0]?.who ?? "", /^console session of unix uid 0 pid \d+$/);

  // the page's own origin without the session's token: refused
  const refused = await page.evaluate(async () => {
    const res = await fetch("/v1/policy", { method: "PUT", body: "version: 1\n" });
    return { status: res.status, body: await res.text() };
  });
  assert.equal(refused.status, 403);
  assert.match(refused.body, /ECSRF/);
  assert.equal(applied.length, 1);
  assert.ok(origin);
  assert.deepEqual(pageErrors, []);

  await page.setViewportSize({ width: 360, height: 740 });
  await page.waitForTimeout(300);
  assert.equal(await horizontalOverflow(page), 0);
  await page.screenshot({ path: "build/screenshots/playground-whatif-360.png", fullPage: true });
});

// The web playground as a person uses it, in Chromium from file://: problems at their line (the
// same list `moat check` prints), the explain panel's verdict and deciding rule, share links,
// accessibility, a phone's width, and the bundled evaluator agreeing with Node's.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import fc from "fast-check";
import type { Page } from "playwright-core";
import { openBrowser, type Browser } from "../helpers/browser.ts";
import {
  buildPlayground,
  fill,
  openPlayground,
  setPolicy,
  texts,
  type PlaygroundBuild,
} from "../helpers/playground-page.ts";
import { edges, firstPacket, packetDice, policySpec, policyText } from "../helpers/policy-gen.ts";
import { checkCommand } from "../../src/cli/commands/check.ts";
import { parsePolicy } from "../../src/config/index.ts";
import { evaluate, type ConnectionFacts } from "../../src/policy/index.ts";

const ROOT = join(import.meta.dirname, "../..");
const SHOTS = join(ROOT, "build/screenshots");

let build: PlaygroundBuild;
let browser: Browser;
/** What the first page asked for and the errors it raised, from the moment it opened. */
const requests: string[] = [];
const errors: string[] = [];

// one page for the whole file (opening one costs seconds): each test sets the policy it needs
before(async () => {
  build = await buildPlayground();
  browser = await openBrowser();
  browser.page.on("request", (r) => requests.push(r.url()));
  browser.page.on("pageerror", (e) => errors.push(String(e)));
  await openPlayground(browser.page, build.url);
});
after(async () => {
  await browser?.close();
  build?.remove();
});

interface PlaygroundApi {
  text(): string;
  verdicts(text: string, facts: ConnectionFacts[]): string[];
}
const api = (page: Page) =>
  page.evaluateHandle(
    () => (globalThis as unknown as { moatPlayground: PlaygroundApi }).moatPlayground,
  );

/** The editor's text. */
async function policyIn(page: Page): Promise<string> {
  return (await api(page)).evaluate((a) => a.text());
}

/** What `moat check FILE` prints for each problem, without the file name. */
async function moatCheck(file: string): Promise<string[]> {
  const out: string[] = [];
  await checkCommand.run(
    { positionals: [file], values: {} },
    { out: (l) => out.push(l), err: () => {} },
  );
  // the last line is the summary
  return out.slice(0, -1).map((l) => (l.startsWith(`${file}:`) ? l.slice(file.length + 1) : l));
}

test("a broken policy shows its error at the line and column moat reports", async () => {
  const { page } = browser;
  const broken = [
    "version: 1",
    "mode: detect",
    "rules:",
    "  - name: web",
    "    direction: ingres",
    "    action: allow",
    "",
  ].join("\n");
  await setPolicy(page, broken);
  const problems = await texts(page, "#problems li");
  assert.deepEqual(problems, [
    "5:16 rules[0].direction: must be one of ingress, egress, any, got 'ingres'",
  ]);
  // the editor marks the same place: an error range on line 4, and its gutter marker
  const marked = page.locator(".cm-line", { has: page.locator(".cm-lintRange-error") });
  assert.equal(await marked.textContent(), "    direction: ingres");
  assert.match(
    (await page.textContent("#check-summary")) ?? "",
    /^1 error: the daemon would refuse this policy$/,
  );
  await page.setViewportSize({ width: 1300, height: 800 });
  await page.screenshot({ path: join(SHOTS, "playground-errors.png") });
});

test("the error list equals moat check's for the examples and for broken files", async () => {
  const { page } = browser;
  const dir = mkdtempSync(join(tmpdir(), "moat-web-check-"));
  try {
    writeFileSync(join(dir, "bad-yaml.yaml"), "version: 1\nrules: [\n  - name: x\n");
    writeFileSync(join(dir, "empty.yaml"), "");
    writeFileSync(join(dir, "no-version.yaml"), "mode: prevent\nrules: []\n");
    const files = [
      ...readdirSync(join(ROOT, "examples"))
        .filter((n) => n.endsWith(".yaml"))
        .map((n) => join("examples", n)),
      ...["schema-errors", "shadowed", "names", "process-rules", "http-on-tls-port"].map((n) =>
        join("test/fixtures/policies", `${n}.yaml`),
      ),
      ...["bad-yaml", "empty", "no-version"].map((n) => join(dir, `${n}.yaml`)),
    ];
    for (const file of files) {
      const expected = await moatCheck(file);
      await setPolicy(page, readFileSync(resolve(ROOT, file), "utf8"));
      assert.deepEqual(await texts(page, "#problems li"), expected, file);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("explaining a connection shows the verdict, the deciding rule and the rules passed over", async () => {
  const { page } = browser;
  await setPolicy(page, readFileSync(join(ROOT, "examples/default.yaml"), "utf8"));
  await fill(page, {
    direction: "egress",
    protocol: "tcp",
    local: "10.0.0.1",
    "local-port": "40000",
    remote: "198.51.100.7",
    "remote-port": "25",
  });
  await page.click("#explain-form button[type=submit]");
  assert.equal(await page.textContent("#verdict"), "detected by rule flag-direct-smtp");
  assert.match((await page.textContent(".cm-deciding")) ?? "", /name: flag-direct-smtp/);
  assert.equal(await page.textContent("#rules li.deciding .rule-name"), "flag-direct-smtp");
  const misses = await texts(page, "#misses li");
  assert.deepEqual(misses.slice(0, 2), [
    "loopback (line 19): remote 198.51.100.7 is not in [127.0.0.0/8, ::1]",
    "dns-out (line 24): it judges udp; this is tcp",
  ]);
  assert.ok(misses.some((m) => m.startsWith("log-ssh-in (line 29): it judges ingress")));
  // the lines are moat explain's own
  const lines = await texts(page, "#explanation li");
  assert.equal(
    lines[0],
    "connection: egress tcp 10.0.0.1:40000 -> 198.51.100.7:25 (local -> remote)",
  );
  assert.ok(lines.includes("rule: flag-direct-smtp"));
  await page.screenshot({ path: join(SHOTS, "playground-explain.png") });

  // the deep link opens the same explanation in a fresh page
  const link = await page.getAttribute("#explain-link", "href");
  assert.ok(link?.startsWith("#explain="));
  const other = await browser.context.newPage();
  try {
    await openPlayground(other, `${build.url}${link}`);
    assert.equal(await other.inputValue('#explain-form [name="remote-port"]'), "25");
    assert.equal(await other.textContent("#verdict"), "detected by rule flag-direct-smtp");
  } finally {
    await other.close();
  }
});

test("a share link carries the policy in its fragment and opens it again", async () => {
  const { page } = browser;
  const policy = readFileSync(join(ROOT, "examples/server.yaml"), "utf8").replace(
    "name: ssh-from-admins",
    "name: ssh-shared",
  );
  await setPolicy(page, policy);
  await page.evaluate('document.querySelector("#share-link").value = ""');
  await page.click("#share");
  // the link is made asynchronously (CompressionStream)
  await page.waitForFunction('document.querySelector("#share-link").value !== ""');
  const link = await page.inputValue("#share-link");
  assert.ok(link.startsWith(`${build.url}#policy=`), link);
  assert.ok(link.length < policy.length, "the policy is compressed");
  const other = await browser.context.newPage();
  const asked: string[] = [];
  other.on("request", (r) => asked.push(r.url()));
  try {
    await openPlayground(other, link);
    assert.equal(await policyIn(other), policy);
    assert.deepEqual(
      asked.filter((u) => !u.startsWith("file:")),
      [],
      "nothing is fetched from a server",
    );
    // #policy=running asks the daemon that serves the page; from a file there is none to ask
    await other.goto(`${build.url}#policy=running`);
    await other.reload();
    await other.waitForSelector("body[data-checked]");
    assert.match(
      (await other.textContent("#share-status")) ?? "",
      /^The running policy could not be read \(.*\): open the page from the daemon's console\.$/,
    );
  } finally {
    await other.close();
  }
});

test("the build is one classic script that opens from file:// and fetches nothing", async () => {
  const html = readFileSync(join(build.dir, "playground.html"), "utf8");
  const scripts = [...html.matchAll(/<script\b[^>]*>/g)].map((m) => m[0]);
  assert.deepEqual(scripts, ['<script src="playground.js">']);
  const js = readFileSync(join(build.dir, "playground.js"), "utf8");
  assert.doesNotMatch(js, /new Worker\(|importScripts\(/);
  assert.match(js, /moat firewall policy \(version 1\)/, "the schema is inlined");
  // the first page opened from file:// (before()): it asked for its three files and nothing else
  assert.deepEqual(errors, []);
  assert.deepEqual(requests.map((u) => u.slice(u.lastIndexOf("/") + 1)).sort(), [
    "playground.css",
    "playground.html",
    "playground.js",
  ]);
});

/** axe-core's findings of impact serious or critical, as "rule: target" lines. */
async function seriousFindings(page: Page): Promise<string[]> {
  const require = createRequire(import.meta.url);
  await page.addScriptTag({
    content: readFileSync(require.resolve("axe-core/axe.min.js"), "utf8"),
  });
  const violations = await page.evaluate(async () => {
    const axe = (
      globalThis as unknown as {
        axe: {
          run(): Promise<{
            violations: { id: string; impact: string | null; nodes: { target: string[] }[] }[];
          }>;
        };
      }
    ).axe;
    return (await axe.run()).violations;
  });
  return violations
    .filter((v) => v.impact === "serious" || v.impact === "critical")
    .flatMap((v) => v.nodes.map((n) => `${v.id}: ${n.target.join(" ")}`));
}

test("axe finds nothing serious or critical, and a 360 px wide screen needs no sideways scrolling", async () => {
  const { page } = browser;
  try {
    await page.setViewportSize({ width: 1300, height: 900 });
    await setPolicy(page, readFileSync(join(ROOT, "examples/default.yaml"), "utf8"));
    await page.click("#explain-form button[type=submit]");
    assert.deepEqual(await seriousFindings(page), []);
    await page.screenshot({ path: join(SHOTS, "playground.png") });
    await page.setViewportSize({ width: 360, height: 800 });
    await page.click("#explain-form summary");
    const widths = await page.evaluate(() => {
      const root = (
        globalThis as unknown as {
          document: { documentElement: { scrollWidth: number; clientWidth: number } };
        }
      ).document.documentElement;
      return { scroll: root.scrollWidth, client: root.clientWidth };
    });
    assert.ok(
      widths.scroll <= widths.client,
      `page is ${widths.scroll} px wide in a ${widths.client} px screen`,
    );
    assert.deepEqual(await seriousFindings(page), []);
    await page.screenshot({ path: join(SHOTS, "playground-360.png"), fullPage: true });
  } finally {
    await page.setViewportSize({ width: 1300, height: 900 });
  }
});

test("the bundled evaluator gives Node's verdicts on the property tests' policies and packets", async () => {
  const { page } = browser;
  const specs = fc.sample(policySpec, { numRuns: 30, seed: 20261202 });
  const dice = fc.sample(packetDice, { numRuns: 60, seed: 7 });
  let compared = 0;
  for (const spec of specs) {
    const text = policyText(spec);
    const model = parsePolicy(text, "policy.yaml");
    const facts: ConnectionFacts[] = dice.map((d) => firstPacket(edges(model), d).facts);
    const node = facts.map((f) => {
      const r = evaluate(model, f);
      return `${r.verdict} ${r.rule}`;
    });
    const inBrowser = await (
      await api(page)
    ).evaluate((a, arg) => a.verdicts(arg.text, arg.facts), { text, facts });
    assert.deepEqual(inBrowser, node, text);
    compared += node.length;
  }
  assert.equal(compared, 30 * 60);
});

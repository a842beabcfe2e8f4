// The web playground in Chromium, for test/web: the bundle built by web/build.ts into a directory
// of the test's own, opened from file:// (as a person opens build/web/playground.html), and the
// steps a person takes: replace the policy, fill the explain form, read what the page shows.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import type { Page } from "playwright-core";
import { buildWeb } from "../../web/build.ts";

export interface PlaygroundBuild {
  dir: string;
  url: string;
  remove(): void;
}

export async function buildPlayground(): Promise<PlaygroundBuild> {
  const dir = mkdtempSync(join(tmpdir(), "moat-web-"));
  await buildWeb(dir);
  return {
    dir,
    url: pathToFileURL(join(dir, "playground.html")).href,
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** The page's fingerprint of a text (web/playground/main.ts), to wait until it was checked. */
export function fingerprint(text: string): string {
  let h = 5381;
  for (let i = 0; i < text.length; i++) h = (Math.imul(h, 33) ^ text.charCodeAt(i)) >>> 0;
  return h.toString(36);
}

export async function openPlayground(page: Page, url: string): Promise<void> {
  await page.goto(url);
  await page.waitForSelector("body[data-checked]");
}

/** Replaces the editor's text as a paste would, and waits until the page has checked it. */
export async function setPolicy(page: Page, text: string): Promise<void> {
  await page.click(".cm-content");
  await page.keyboard.press("Control+A");
  if (text === "") await page.keyboard.press("Delete");
  else await page.keyboard.insertText(text);
  await page.waitForSelector(`body[data-checked="${fingerprint(text)}"]`);
}

export async function texts(page: Page, selector: string): Promise<string[]> {
  return page.$$eval(selector, (nodes) => nodes.map((n) => n.textContent ?? ""));
}

export async function fill(page: Page, values: Record<string, string>): Promise<void> {
  for (const [name, value] of Object.entries(values)) {
    const field = page.locator(`#explain-form [name="${name}"]`);
    const tag = await field.evaluate((n) => n.tagName);
    if (tag === "SELECT") await field.selectOption(value);
    else await field.fill(value);
  }
}

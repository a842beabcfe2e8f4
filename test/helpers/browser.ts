// Debian's Chromium driven through playwright-core, for the web console's tests. Each browser
// gets a profile directory of its own, removed on close; the flags keep it off the network
// (no component updates, sync or QUIC) and let it run as root without a display.
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium, type BrowserContext, type Page } from "playwright-core";

export const CHROMIUM = "/usr/bin/chromium";

export interface Browser {
  context: BrowserContext;
  page: Page;
  close(): Promise<void>;
}

export interface BrowserOptions {
  /** The network namespace the browser runs in (to reach a daemon's loopback listener there). */
  netns?: string;
}

export async function openBrowser(options: BrowserOptions = {}): Promise<Browser> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} is missing: install Debian's chromium package (make setup does)`);
  }
  const profile = mkdtempSync(join(tmpdir(), "moat-chromium-"));
  let executablePath = CHROMIUM;
  if (options.netns) {
    // playwright talks to the browser over a pipe, which crosses into the namespace
    executablePath = join(profile, "chromium-in-netns");
    writeFileSync(
      executablePath,
      `#!/bin/sh\nexec ip netns exec ${options.netns} ${CHROMIUM} "$@"\n`,
      { mode: 0o700 },
    );
  }
  try {
    const context = await chromium.launchPersistentContext(join(profile, "profile"), {
      executablePath,
      headless: true,
      args: [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
      ],
    });
    const page = context.pages()[0] ?? (await context.newPage());
    return {
      context,
      page,
      close: async () => {
        await context.close().catch(() => undefined);
        rmSync(profile, { recursive: true, force: true });
      },
    };
  } catch (e) {
    rmSync(profile, { recursive: true, force: true });
    throw e;
  }
}

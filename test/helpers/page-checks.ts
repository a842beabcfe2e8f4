// Checks on a page in the test browser: axe-core's accessibility findings, horizontal overflow,
// long tasks and the JS heap. axe runs through the DevTools protocol, so the page's CSP (which
// refuses inline scripts) stays as it is.
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import type { Page } from "playwright-core";

const AXE = readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");

export interface AxeFinding {
  id: string;
  impact: string | null;
  help: string;
  nodes: string[];
}

/** Serious and critical axe-core violations. */
export async function axeSerious(page: Page): Promise<AxeFinding[]> {
  await page.evaluate(AXE);
  return page.evaluate(async () => {
    const axe = (
      globalThis as unknown as {
        axe: {
          run: () => Promise<{
            violations: {
              id: string;
              impact: string | null;
              help: string;
              nodes: { target: unknown[] }[];
            }[];
          }>;
        };
      }
    ).axe;
    const r = await axe.run();
    return r.violations
      .filter((v) => v.impact === "serious" || v.impact === "critical")
      .map((v) => ({
        id: v.id,
        impact: v.impact,
        help: v.help,
        nodes: v.nodes.map((n) => String(n.target)),
      }));
  });
}

/** Pixels the page is wider than its viewport (0: no horizontal scroll). */
export function horizontalOverflow(page: Page): Promise<number> {
  // page-side code as text: the tests' types know no DOM
  return page.evaluate<number>(
    "document.documentElement.scrollWidth - document.documentElement.clientWidth",
  );
}

/** A long animation frame: its duration and the page's own script time within it. */
export interface LongFrame {
  ms: number;
  scriptMs: number;
  scripts: string[];
}

/**
 * Starts collecting 'longtask' and 'long-animation-frame' entries in the page (call before it
 * loads). The second says how much of a long frame was the page's own scripts.
 */
export async function watchLongTasks(page: Page): Promise<void> {
  await page.addInitScript(`
    globalThis.__longTasks = [];
    globalThis.__longFrames = [];
    new PerformanceObserver((list) => {
      for (const e of list.getEntries()) globalThis.__longTasks.push(e.duration);
    }).observe({ type: "longtask", buffered: true });
    new PerformanceObserver((list) => {
      for (const f of list.getEntries())
        globalThis.__longFrames.push({
          ms: f.duration,
          scriptMs: f.scripts.reduce((n, s) => n + s.duration, 0),
          scripts: f.scripts.map((s) => s.invoker + " " + Math.round(s.duration) + " ms"),
        });
    }).observe({ type: "long-animation-frame", buffered: true });
  `);
}

/** One Server-Sent Event the page was given: its type and the length of its data. */
export interface StreamMessage {
  type: string;
  chars: number;
}

/**
 * Records every named event an EventSource hands the page (call before it loads): how much the
 * daemon asks the page to parse and apply, which is the page's work and does not depend on how
 * loaded the machine is.
 */
export async function watchStreams(page: Page): Promise<void> {
  // the page reads its streams with fetch(): each stream's body is teed, and its copy split into
  // events (blank-line ended, "event:" and "data:" lines) as a browser's EventSource would
  await page.addInitScript(`
    globalThis.__streamMessages = [];
    const bodyOf = Object.getOwnPropertyDescriptor(Response.prototype, "body").get;
    const count = async (stream) => {
      const reader = stream.getReader();
      const decoder = new TextDecoder();
      let text = "";
      for (;;) {
        const { done, value } = await reader.read();
        if (done) return;
        text += decoder.decode(value, { stream: true });
        let end;
        while ((end = text.indexOf("\\n\\n")) >= 0) {
          let type = "message";
          const data = [];
          for (const line of text.slice(0, end).split("\\n")) {
            if (line.startsWith("event:")) type = line.slice(6).trim();
            else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
          }
          text = text.slice(end + 2);
          if (data.length) globalThis.__streamMessages.push({ type, chars: data.join("\\n").length });
        }
      }
    };
    const teed = new WeakMap();
    Object.defineProperty(Response.prototype, "body", {
      configurable: true,
      get() {
        if (teed.has(this)) return teed.get(this);
        const body = bodyOf.call(this);
        if (!body || !(this.headers.get("content-type") ?? "").startsWith("text/event-stream"))
          return body;
        const [page, copy] = body.tee();
        teed.set(this, page);
        void count(copy);
        return page;
      },
    });
  `);
}

export function streamMessages(page: Page): Promise<StreamMessage[]> {
  return page.evaluate(
    () => (globalThis as unknown as { __streamMessages: StreamMessage[] }).__streamMessages,
  );
}

export function longTasks(page: Page): Promise<number[]> {
  return page.evaluate(() => (globalThis as unknown as { __longTasks: number[] }).__longTasks);
}

export function longFrames(page: Page): Promise<LongFrame[]> {
  return page.evaluate(() => (globalThis as unknown as { __longFrames: LongFrame[] }).__longFrames);
}

/** The page's used JS heap in bytes, after a garbage collection (DevTools protocol). */
export async function usedHeap(page: Page): Promise<number> {
  const cdp = await page.context().newCDPSession(page);
  try {
    await cdp.send("HeapProfiler.collectGarbage");
    const { usedSize } = await cdp.send("Runtime.getHeapUsage");
    return usedSize;
  } finally {
    await cdp.detach();
  }
}

/**
 * Raises the priority of every process this one started (the browser's), so that a page's long
 * tasks measure the page, not the other work on a shared machine (this process's own flood
 * included).
 */
export function raisePriority(): void {
  const children = (pid: number): number[] => {
    const r = spawnSync("ps", ["-o", "pid=", "--ppid", String(pid)], { encoding: "utf8" });
    const kids = r.stdout
      .split("\n")
      .map(Number)
      .filter((n) => n > 0);
    return kids.flatMap((k) => [k, ...children(k)]);
  };
  for (const pid of children(process.pid))
    spawnSync("renice", ["-n", "-15", "-p", String(pid)], { stdio: "ignore" });
}

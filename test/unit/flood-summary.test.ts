// A flood in the audit log and on stdout: the first few events of each kind in a second are
// written in full, the rest become one line "and N more like this in the last second"; every
// event is still counted and reaches the sinks that asked for all of them (the history, live
// subscribers: here a collecting sink beside the audit and stdout sinks).
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { MoatEvent } from "../../src/datapath/event.ts";
import { auditSink } from "../../src/observe/audit-sink.ts";
import { stdoutSink } from "../../src/observe/stdout-sink.ts";
import { EventPipeline } from "../../src/observe/pipeline.ts";
import { FLOOD_LIMITS, FloodSummary } from "../../src/observe/flood-summary.ts";
import { fakeEvent } from "../helpers/events.ts";

const FLOOD = 20_000;

test("a flood is summarised in the audit log and on stdout; every event reaches the history", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "moat-flood-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, "audit.log");
  const audit = auditSink();
  audit.setPath(path);
  const stdout: string[] = [];
  const all: MoatEvent[] = [];
  const pipeline = new EventPipeline();
  pipeline.add(audit);
  pipeline.add(stdoutSink((line) => stdout.push(line), false));
  pipeline.add({ name: "history", write: (batch) => void all.push(...batch), close() {} });

  for (let i = 0; i < FLOOD; i++) {
    pipeline.push(fakeEvent({ remote: { ip: "203.0.113.9", port: 1024 + (i % 60000) } }));
    if (i % 1000 === 0) await new Promise((r) => setImmediate(r));
  }
  // another source in the same second is not swallowed by the flood
  pipeline.push(fakeEvent({ remote: { ip: "192.0.2.77", port: 4242 } }));
  await pipeline.flush();
  await new Promise((r) => setTimeout(r, FLOOD_LIMITS.windowMs + 300)); // the window closes
  await pipeline.close();

  assert.equal(all.length, FLOOD + 1, "the history got every event");
  assert.equal(pipeline.events.blocked, FLOOD + 1, "every event is counted");
  for (const [where, text] of [
    ["audit log", readFileSync(path, "utf8")],
    ["stdout", stdout.join("\n")],
  ] as const) {
    const lines = text.trim().split("\n");
    const full = lines.filter((l) => / BLOCKED ingress tcp 203\.0\.113\.9:\d+ -> /.test(l));
    assert.ok(
      lines.some((l) => / BLOCKED ingress tcp 192\.0\.2\.77:4242 -> /.test(l)),
      `${where}: the other source`,
    );
    const summaries = lines.filter((l) => / and \d+ more like this in the last second: /.test(l));
    const summarised = summaries.reduce((n, l) => n + Number(/ and (\d+) more/.exec(l)?.[1]), 0);
    assert.equal(full.length + summarised, FLOOD, `${where}: every flood event is accounted for`);
    // the first events of each second in full (the flood may straddle a second or two)
    assert.ok(full.length >= FLOOD_LIMITS.perKey, `${where}: the first events in full`);
    assert.ok(
      full.length <= FLOOD_LIMITS.perKey * summaries.length,
      `${where}: ${full.length} full lines, ${summaries.length} summaries`,
    );
    assert.match(
      summaries[0] ?? "",
      /^\S+Z and \d+ more like this in the last second: BLOCKED ingress tcp from 203\.0\.113\.9 to port 22 by rule default$/,
    );
    assert.ok(lines.length < 100, `${where}: ${lines.length} lines for ${FLOOD} events`);
  }
});

test("a scan of every port from one source and a flood from many sources to one port are summarised kind by kind", () => {
  const lines: string[] = [];
  // a window that does not close during the test: every event falls in it
  const summary = new FloodSummary((line) => lines.push(line), {
    perKey: 1,
    perWindow: 100,
    windowMs: 3_600_000,
  });
  let full = 0;
  const scan = (port: number) =>
    fakeEvent({ direction: "egress", remote: { ip: "198.51.100.4", port }, rule: "scan" });
  for (let port = 1; port <= 65_535; port++)
    for (let n = 0; n < 2; n++) full += Number(summary.admit(scan(port)));
  // the same rule, from 2,000 sources to port 22: kinds past the 65,536 tracked are counted together
  const spoofed = (i: number) =>
    fakeEvent({ remote: { ip: `10.${(i >> 8) & 255}.${i & 255}.9`, port: 40000 } });
  for (let i = 0; i < 2_000; i++) full += Number(summary.admit(spoofed(i)));
  summary.flush();
  summary.close();

  assert.equal(full, 100, "the line budget of the window, in full");
  const summaries = lines.filter((l) =>
    / more like this in the last second: .* by rule scan$/.test(l),
  );
  // the first event of ports 1-100 had a line of its own (the budget); every other one is counted
  assert.equal(summaries.length, 65_535);
  assert.match(
    summaries[0]!,
    /Z and 1 more like this in the last second: BLOCKED egress tcp to 198\.51\.100\.4:1 by rule scan$/,
  );
  assert.match(
    summaries.at(-1)!,
    / and 2 more like this .*: BLOCKED egress tcp to 198\.51\.100\.4:65535 /,
  );
  assert.equal(
    summaries.reduce((n, l) => n + Number(/ and (\d+) more/.exec(l)![1]), 0),
    65_535 * 2 - 100,
  );
  // one kind per source was left for the flood (65,536 - 65,535); the rest are "other kinds"
  assert.ok(
    lines.some((l) =>
      / and 1 more like this .*: BLOCKED ingress tcp from 10\.0\.0\.9 to port 22 by rule default$/.test(
        l,
      ),
    ),
  );
  assert.ok(lines.some((l) => / and 1999 more events of other kinds in the last second$/.test(l)));
});

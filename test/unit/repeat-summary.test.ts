// Repeated detections on stdout and in the audit log: the first is printed, the repeats within a
// minute are counted and summarised in one line, so a busy host in detect mode stays readable.
import { test } from "node:test";
import assert from "node:assert/strict";
import { repeatSummary } from "../../src/observe/repeat-summary.ts";
import { fakeEvent } from "../helpers/events.ts";

const T0 = Date.parse("2026-11-22T10:00:00Z");
const at = (ms: number) => new Date(T0 + ms).toISOString();

const detected = (ms: number, clientPort: number, serverPort = 443) =>
  fakeEvent({
    time: at(ms),
    type: "detected",
    verdict: "detected",
    mode: "detect",
    direction: "egress",
    local: { ip: "10.0.0.1", port: clientPort },
    remote: { ip: "198.51.100.7", port: serverPort },
  });

test("repeats of a detection within the window are one summary line", () => {
  const s = repeatSummary(60_000);
  const lines: string[] = [];
  for (let i = 0; i < 50; i++) {
    const line = s.line(detected(i * 100, 40000 + i));
    if (line) lines.push(line);
  }
  const other = s.line(detected(6000, 41000, 80));
  assert.deepEqual(lines, [
    "2026-11-22T10:00:00.000Z DETECTED egress tcp 10.0.0.1:40000 -> 198.51.100.7:443 on eth0 by rule default",
  ]);
  assert.match(other ?? "", /-> 198\.51\.100\.7:80 /);
  assert.deepEqual(s.due(T0 + 30_000), []);
  assert.deepEqual(s.due(T0 + 61_000), [
    "2026-11-22T10:01:01.000Z ... and 49 more like this in the last 60 s: DETECTED egress tcp 10.0.0.1 -> 198.51.100.7:443 on eth0 by rule default",
  ]);
  // after the window the next one is printed in full again
  assert.match(s.line(detected(62_000, 40100)) ?? "", /^2026-11-22T10:01:02.000Z DETECTED/);
});

test("blocked, allowed and closed events are never summarised", () => {
  const s = repeatSummary(60_000);
  for (let i = 0; i < 3; i++) {
    assert.ok(s.line(fakeEvent({ time: at(i), local: { ip: "10.0.0.1", port: 22 } })));
    assert.ok(s.line(fakeEvent({ time: at(i), type: "allowed", verdict: "allowed" })));
  }
});

test("close() reports what is still counted", () => {
  const s = repeatSummary(60_000);
  s.line(detected(0, 40000));
  s.line(detected(10, 40001));
  assert.deepEqual(s.flush(T0 + 5000), [
    "2026-11-22T10:00:05.000Z ... and 1 more like this in the last 5 s: DETECTED egress tcp 10.0.0.1 -> 198.51.100.7:443 on eth0 by rule default",
  ]);
});

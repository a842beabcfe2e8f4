// The line of a connection past its rule's max_duration: in detect mode it is reported once as
// detected, and the line says why, as the closed line of a prevent-mode cut does.
import { test } from "node:test";
import assert from "node:assert/strict";
import { formatEventLine } from "../../src/datapath/event.ts";
import { fakeEvent } from "../helpers/events.ts";

const TIME = "2026-12-06T10:00:00.000Z";

test("a connection detect mode lets run past max_duration: the line says so", () => {
  const line = formatEventLine(
    fakeEvent({
      time: TIME,
      type: "detected",
      verdict: "allowed",
      mode: "detect",
      reason: "max_duration",
      direction: "ingress",
      rule: "web",
      local: { ip: "10.0.0.2", port: 80 },
      remote: { ip: "10.0.0.1", port: 40000 },
    }),
  );
  assert.equal(
    line,
    `${TIME} DETECTED ingress tcp 10.0.0.1:40000 -> 10.0.0.2:80 on eth0 by rule web (past max_duration)`,
  );
});

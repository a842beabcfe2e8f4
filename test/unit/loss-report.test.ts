import { test } from "node:test";
import assert from "node:assert/strict";
import { lossReport } from "../../src/observe/loss-report.ts";

const counts = (eventLost: bigint, ctFull: bigint) => ({
  eventLost: { packets: eventLost },
  ctFull: { packets: ctFull },
});

test("loss report names what grew, and says nothing when nothing did", () => {
  assert.equal(lossReport(counts(5n, 0n), counts(5n, 0n)), null);
  assert.equal(
    lossReport(counts(5n, 1n), counts(128n, 3n)),
    "warning: 123 events lost (ring buffer full); 2 connections judged without tracking (conntrack table full)",
  );
  assert.equal(
    lossReport({}, counts(0n, 4n)),
    "warning: 4 connections judged without tracking (conntrack table full)",
  );
});

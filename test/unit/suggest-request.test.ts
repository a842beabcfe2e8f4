// GET and POST /v1/policy/suggest: every malformed or out-of-range parameter is a 400, never a
// TypeError or RangeError thrown later.
import { test } from "node:test";
import assert from "node:assert/strict";
import { suggestBody, suggestQuery } from "../../src/api/suggest-request.ts";
import { HttpError } from "../../src/api/errors.ts";

const NOW = Date.parse("2026-11-30T12:00:00Z");
const DAY = 86_400_000;

const status = (f: () => unknown): number | string => {
  try {
    f();
    return "accepted";
  } catch (err) {
    return err instanceof HttpError ? err.status : String(err);
  }
};

test("suggest request: wrong types and unbounded times are 400", () => {
  for (const stable of [["1d"], {}, null, true, -5, 1.5])
    assert.equal(
      status(() => suggestBody(JSON.stringify({ text: "x", stable }), false, NOW)),
      400,
      `stable ${JSON.stringify(stable)}`,
    );
  for (const since of ["100000000d", "200000000d"])
    assert.equal(
      status(() => suggestQuery(new URLSearchParams({ since }), NOW)),
      400,
      `since ${since}`,
    );
  assert.equal(
    status(() => suggestQuery(new URLSearchParams({ stable: "99999999999d" }), NOW)),
    400,
  );
  assert.equal(
    status(() => suggestBody('{"text":"x","since":[1]}', false, NOW)),
    400,
  );
  // what is meant still passes
  const q = suggestQuery(new URLSearchParams({ since: "14d", stable: "3d" }), NOW);
  assert.deepEqual([q.since, q.stableSeconds], [NOW - 14 * DAY, 3 * 86_400]);
  assert.equal(suggestBody('{"text":"x","stable":3600}', false, NOW).stableSeconds, 3600);
  assert.equal(suggestQuery(new URLSearchParams({ stable: "0" }), NOW).stableSeconds, 0);
  assert.equal(suggestQuery(new URLSearchParams({ since: "0" }), NOW).since, 0);
  assert.equal(suggestQuery(new URLSearchParams({ since: "400d" }), NOW).since, NOW - 400 * DAY);
});

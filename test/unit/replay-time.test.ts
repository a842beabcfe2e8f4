// The times of a replay or a suggestion as an API client sends them: a duration back from now,
// ms since the epoch or an ISO time that says its offset. A time without one is refused, not read
// in the daemon's own zone (the client's may be another); the CLI sends ms it read in its own.
import { test } from "node:test";
import assert from "node:assert/strict";
import { replayTime } from "../../src/api/replay-request.ts";
import { HttpError } from "../../src/api/errors.ts";

const NOW = Date.parse("2026-12-06T12:00:00Z");

test("a duration, ms, or an ISO time with its offset", () => {
  assert.equal(replayTime("2h", "since", NOW), NOW - 7_200_000);
  assert.equal(replayTime("1764979200000", "since", NOW), 1764979200000);
  assert.equal(replayTime(1764979200000, "since", NOW), 1764979200000);
  assert.equal(replayTime("2026-12-06T11:00:00+01:00", "since", NOW), NOW - 7_200_000);
});

test("a time without an offset, a date alone or free text is refused", () => {
  for (const text of ["2026-12-06T10:00", "2026-12-06", "Dec 5", "2026-02-30T10:00:00Z"])
    assert.throws(
      () => replayTime(text, "since", NOW),
      (err: unknown) =>
        err instanceof HttpError && err.code === "EBADTIME" && /with its offset/.test(err.message),
      text,
    );
});

test("a time no Date can hold is refused, not an internal error", () => {
  for (const value of ["99999999999999999999", 1e20, -1, 1.5])
    assert.throws(
      () => replayTime(value, "until", NOW),
      (err: unknown) => err instanceof HttpError && err.code === "EBADTIME",
      String(value),
    );
});

test("RFC 3339's lower-case letters and space separator are read", () => {
  assert.equal(replayTime("2026-12-06t10:00:00z", "since", NOW), NOW - 7_200_000);
  assert.equal(replayTime("2026-12-06 10:00:00Z", "since", NOW), NOW - 7_200_000);
});

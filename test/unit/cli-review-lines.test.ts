// What `moat review` and `moat decisions` print of a connection: an executable's path and a
// looked-up name are anyone's to choose, so they are printed escaped; a control character cannot
// move the cursor over the line or the question that follows it.
import { test } from "node:test";
import assert from "node:assert/strict";
import { reviewLine } from "../../src/cli/commands/review.ts";
import { decisionLine } from "../../src/cli/commands/decisions.ts";
import type { ReviewEntry } from "../../src/api/index.ts";
import type { LocalDecision } from "../../src/config/index.ts";

/** Whether `line` holds a C0 control character or DEL. */
const hasControl = (line: string) => [...line].some((c) => c < " " || c === "\u007f");

const forged = "/tmp/x\r\u001b[2Kr2  detected egress tcp 203.0.113.9:443 by /usr/bin/git";

test("a review entry's path and names are printed escaped, on one line", () => {
  const entry: ReviewEntry = {
    id: "r1",
    direction: "egress",
    protocol: "tcp",
    remote: { ip: "203.0.113.9", names: ["evil\u001b]0;title\u0007.example"] },
    port: 443,
    process: { path: forged, name: "x", user: 1000 },
    verdict: "detected",
    first: "2026-12-06T00:00:00.000Z",
    last: "2026-12-06T00:00:01.000Z",
    count: 2,
  };
  const line = reviewLine(entry);
  assert.equal(hasControl(line), false, "no control character is printed");
  assert.match(line, /by \/tmp\/x\\r\\x1b\[2Kr2 /);
  assert.match(line, /evil\\x1b\]0;title\\x07\.example/);
});

test("a decision's process path is printed escaped", () => {
  const decision = {
    id: "d1",
    action: "allow",
    direction: "egress",
    remote: "203.0.113.9",
    lifetime: "once",
    by: "root",
    process: { path: forged },
  } as unknown as LocalDecision;
  const line = decisionLine(decision);
  assert.equal(hasControl(line), false);
  assert.match(line, /for \/tmp\/x\\r\\x1b\[2K/);
});

test("a review entry of a process known by name only does not read as an executable's path", () => {
  // comm is anyone's to set, slashes included; a decision for it names no executable
  const entry: ReviewEntry = {
    id: "r2",
    direction: "egress",
    protocol: "tcp",
    remote: { ip: "203.0.113.9" },
    port: 443,
    process: { path: "", name: "/usr/bin/apt", user: 1000 },
    verdict: "detected",
    first: "2026-12-06T00:00:00.000Z",
    last: "2026-12-06T00:00:01.000Z",
    count: 1,
  };
  const line = reviewLine(entry);
  assert.doesNotMatch(line, /by \/usr\/bin\/apt/);
  assert.match(line, /by a process named \/usr\/bin\/apt \(uid 1000, executable unknown\)/);
});

test("a decision's user is listed with its program, a name escaped", () => {
  const decision = (user: number | string) =>
    ({
      id: "d2",
      action: "allow",
      direction: "egress",
      remote: "203.0.113.9",
      lifetime: "forever",
      by: "root",
      process: { path: "/usr/bin/curl", user },
    }) as LocalDecision;
  assert.match(
    decisionLine(decision(1000)),
    / 203\.0\.113\.9 for \/usr\/bin\/curl run by uid 1000 /,
  );
  const named = decisionLine(decision(`al\x1b[2Kice`));
  assert.equal(hasControl(named), false);
  assert.match(named, /for \/usr\/bin\/curl run by user al\\x1b\[2Kice /);
});

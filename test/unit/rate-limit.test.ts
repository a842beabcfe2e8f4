// Rate limits in the policy language: what `moat check` says about them, what `moat explain`
// shows, and the reference model's algorithms on hand-worked sequences.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { checkPolicySource, textOnlyHost } from "../../src/config/parse.ts";
import { parsePolicy } from "../../src/config/index.ts";
import {
  LimitMeter,
  LimitSourceModel,
  leaseFor,
  limitId,
  limitParams,
  newLimitConnection,
} from "../../src/policy/rate-limit.ts";

function problems(rules: string): string[] {
  const text = `version: 1\nmode: prevent\nrules:\n${rules}`;
  return checkPolicySource(text, "p.yaml", textOnlyHost)
    .diagnostics.filter((d) => d.path !== "mode")
    .map((d) => `${d.line}:${d.path}: ${d.severity === "warning" ? "warning: " : ""}${d.message}`);
}

const rule = (action: string, limit: string) =>
  `  - name: r\n    direction: ingress\n    action: ${action}\n    rate_limit: ${limit}\n`;

test("moat check: a limit on a block rule, a bad rate, a rate too high, burst on a window", () => {
  assert.deepEqual(problems(rule("block", "{ rate: 10/s }")), [
    "7:rules[0].rate_limit: a rate limit belongs on an allow rule: a block rule already drops all it matches",
  ]);
  assert.match(problems(rule("allow", "{ rate: 10/x }"))[0] ?? "", /must be packets per period/);
  assert.deepEqual(problems(rule("allow", "{ rate: 2000000/s }")), [
    "7:rules[0].rate_limit.rate: the count must be 1 to 1000000 packets per period",
  ]);
  assert.deepEqual(problems(rule("allow", "{ rate: 9/m, algorithm: sliding_window, burst: 3 }")), [
    "7:rules[0].rate_limit.burst: warning: 'burst' has no effect on sliding_window: a window admits the rate's count",
  ]);
  assert.match(
    problems(rule("allow", "{ rate: 9/s, algorithm: lru }"))[0] ?? "",
    /rules\[0\]\.rate_limit\.algorithm/,
  );
});

test("defaults: token bucket with burst = the count, leaky bucket with burst 1, each address", () => {
  const model = parsePolicy(
    `version: 1\nmode: prevent\nrules:\n${rule("allow", "{ rate: 10/s }")}${rule("allow", "{ rate: 6/m, algorithm: leaky_bucket }").replace("name: r", "name: s")}`,
    "p.yaml",
  );
  const [a, b] = model.rules.map((r) => r.rateLimit);
  assert.deepEqual(
    [a?.algorithm, a?.burst, a?.periodSeconds, a?.prefix4, a?.prefix6, a?.perPort],
    ["token_bucket", 10, 1, 32, 128, false],
  );
  assert.deepEqual([b?.algorithm, b?.burst, b?.periodSeconds], ["leaky_bucket", 1, 60]);
  assert.notEqual(limitId("r", a!), limitId("s", a!), "another rule: another limit's state");
  assert.equal(limitId("r", a!), limitId("r", { ...a!, pos: b!.pos }), "position does not count");
});

test("moat explain shows the rule's limit and what happens over it", () => {
  const run = spawnSync(
    "bin/moat",
    ["explain", "examples/rate-limits.yaml", "udp", "203.0.113.9:40000", "->", "10.0.0.1:53"],
    { encoding: "utf8" },
  );
  assert.equal(run.status, 0, run.stderr);
  assert.ok(
    run.stdout
      .split("\n")
      .includes(
        "rate limit: 50/s per source /24 (IPv6 /56) (token bucket, burst 100); over it: dropped",
      ),
    run.stdout,
  );
});

const S = 1_000_000_000n;
function admits(limit: string, times: bigint[]): boolean[] {
  const model = parsePolicy(`version: 1\nmode: prevent\nrules:\n${rule("allow", limit)}`, "p.yaml");
  const meter = new LimitMeter(limitParams(model.rules[0]!.rateLimit!), times[0]!);
  return times.map((t) => meter.admit(t));
}

test("model: token bucket 2/s burst 2", () => {
  const t0 = 100n * S;
  assert.deepEqual(
    admits("{ rate: 2/s, burst: 2 }", [t0, t0, t0, t0 + S / 2n, t0 + S / 2n, t0 + 10n * S]),
    [true, true, false, true, false, true],
  );
});

test("model: fixed window 2/s: the boundary starts a new count", () => {
  const t0 = 100n * S;
  assert.deepEqual(
    admits("{ rate: 2/s, algorithm: fixed_window }", [
      t0 + S - 1n,
      t0 + S - 1n,
      t0 + S - 1n,
      t0 + S,
      t0 + S,
      t0 + S,
    ]),
    [true, true, false, true, true, false],
  );
});

test("model: a connection past 32 packets passes on credit its lease hands over; the window's count holds", () => {
  const model = parsePolicy(
    `version: 1\nmode: prevent\nrules:\n${rule("allow", "{ rate: 100/s, algorithm: fixed_window }")}`,
    "p.yaml",
  );
  const params = limitParams(model.rules[0]!.rateLimit!);
  const t0 = 100n * S;
  const source = new LimitSourceModel(params, t0, leaseFor(params, 1, 50));
  const long = newLimitConnection();
  const verdicts = Array.from({ length: 40 }, () => source.packet(t0, long).within);
  assert.deepEqual(verdicts, Array(40).fill(true));
  // lease of 50 at packet 1; at 32, 18 left: all of it to the connection, 8 of it spent since
  assert.equal(long.credit, 10n);
  assert.equal(long.until, t0 + S);
  // a short flow of the same source finds the lease spent: the shared state's next 50
  assert.equal(source.packet(t0, newLimitConnection()).within, true);
  const rest = Array.from({ length: 70 }, () => source.packet(t0, long).within);
  assert.equal(rest.filter(Boolean).length, 59, "100 in the window, no more");
  // the credit lasts its lease: in the next window the connection asks its lease again
  assert.equal(source.packet(t0 + S, long).within, true);
});

test("model: sliding window 2/s: the previous window counts by its overlap", () => {
  const t0 = 100n * S;
  assert.deepEqual(
    admits("{ rate: 2/s, algorithm: sliding_window }", [
      t0,
      t0,
      t0 + S + S / 2n,
      t0 + S + S / 2n,
      t0 + 2n * S,
    ]),
    // 1.5 s: half of the previous 2 still counts (1), so one more; at 2 s: the 1 of window 1 in full
    [true, true, true, false, true],
  );
});

test("model: leaky bucket 1/s burst 1: strictly one a second", () => {
  const t0 = 100n * S;
  assert.deepEqual(
    admits("{ rate: 1/s, algorithm: leaky_bucket }", [t0, t0 + S - 1n, t0 + S, t0 + S]),
    [true, false, true, false],
  );
});

test("scrub.mss: one value for both families, or each its own; out of range is an error", () => {
  const scrub = (mss: string) =>
    parsePolicy(`version: 1\nmode: prevent\nscrub: { mss: ${mss} }\n`, "p.yaml").scrub;
  assert.deepEqual([scrub("1360")?.mss4, scrub("1360")?.mss6], [1360, 1360]);
  assert.deepEqual(
    [scrub("{ ipv6: 1280 }")?.mss4, scrub("{ ipv6: 1280 }")?.mss6],
    [undefined, 1280],
  );
  const bad = checkPolicySource(
    "version: 1\nmode: prevent\nscrub: { mss: 100 }\n",
    "p.yaml",
    textOnlyHost,
  ).diagnostics.map((d) => `${d.path}: ${d.message}`);
  assert.deepEqual(bad, ["scrub.mss: must be >= 536, got 100"]);
});

test("scrub's IP header settings: read as given, absent ones untouched; a TTL of 0 is an error", () => {
  const scrub = (text: string) =>
    parsePolicy(`version: 1\nmode: prevent\nscrub: ${text}\n`, "p.yaml").scrub;
  const all = scrub("{ min_ttl: 64, clear_df: true, random_ip_id: true }");
  assert.deepEqual(
    [all?.minTtl, all?.clearDf, all?.randomIpId, all?.mss4],
    [64, true, true, undefined],
  );
  const some = scrub("{ mss: 1400, clear_df: false }");
  assert.deepEqual([some?.mss4, some?.minTtl, some?.clearDf], [1400, undefined, undefined]);
  const bad = checkPolicySource(
    "version: 1\nmode: prevent\nscrub: { min_ttl: 0 }\n",
    "p.yaml",
    textOnlyHost,
  ).diagnostics.map((d) => `${d.line}:${d.col} ${d.path}: ${d.message}`);
  assert.deepEqual(bad, ["3:19 scrub.min_ttl: must be >= 1, got 0"]);
});

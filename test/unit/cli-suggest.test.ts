// moat suggest against a real API server over a unix socket, its suggestions computed by the
// daemon's suggester on a worker thread from a generated week of roll-ups: the diff on stdout,
// the reasons on stderr, --json, --output, --promote after clean days, a refused policy file.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  chmodSync,
  chownSync,
  lstatSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startApi } from "../../src/api/server.ts";
import type { ApiControl, SuggestAnswer } from "../../src/api/control.ts";
import { HistoryStore } from "../../src/observe/history/store.ts";
import { EventPipeline } from "../../src/observe/pipeline.ts";
import { historySuggester } from "../../src/daemon/history-suggest.ts";
import { suggestCommand } from "../../src/cli/commands/suggest.ts";
import { fakeSnapshot } from "../helpers/events.ts";
import { DAY, proc, summaries, type GenFlow } from "../helpers/learn-history.ts";

const POLICY = readFileSync(join(import.meta.dirname, "../fixtures/suggest/policy.yaml"), "utf8");

const curl = proc("/usr/bin/curl", 1000);
const flow = (name: string, verdict: GenFlow["verdict"], rule?: string): GenFlow => ({
  process: curl,
  direction: "egress",
  protocol: "tcp",
  peer: { ip: "198.51.100.1", name },
  port: 443,
  verdict,
  ...(rule ? { rule } : {}),
});

test("moat suggest: the diff from the daemon's roll-ups; --promote after clean days", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "moat-cli-suggest-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const historyPath = join(dir, "history.db");
  const store = new HistoryStore(historyPath);
  t.after(() => store.close());
  // two weeks ago, a week of curl reaching three siblings: detected by the default
  const now = Date.now();
  store.insertFlows(
    summaries(
      ["a", "b", "c"].map((l) => flow(`${l}.example.co.uk`, "detected")),
      now - 7 * DAY,
    ),
  );
  const policyPath = join(dir, "policy.yaml");
  writeFileSync(policyPath, POLICY);
  let running = POLICY;
  const pipeline = new EventPipeline();
  const control = {
    snapshot: () => fakeSnapshot(pipeline),
    suggest: historySuggester({ historyPath, policyPath, runningText: () => running }),
    log: () => {},
  } as Partial<ApiControl> as ApiControl;
  const socket = join(dir, "api.sock");
  const api = await startApi(control, [{ listen: `unix:${socket}` }]);
  t.after(() => api.close());

  const run = async (values: Record<string, string | boolean>) => {
    const out: string[] = [];
    const err: string[] = [];
    const code = await suggestCommand.run(
      { values: { api: `unix:${socket}`, ...values }, positionals: [] },
      { out: (l) => out.push(l), err: (l) => err.push(l) },
    );
    return { code, out, err };
  };

  // the file given: its text is what the diff is against, the rule appended
  const output = join(dir, "suggested.yaml");
  const proposed = await run({ policy: policyPath, since: "15d", output });
  assert.equal(proposed.code, 0, proposed.err.join("\n"));
  assert.equal(proposed.out[0], "--- a/policy.yaml");
  assert.ok(proposed.out.includes("+  - name: suggest-curl-out-1"));
  assert.ok(proposed.out.includes('+    layer3: { remote: ["*.example.co.uk"] }'));
  assert.match(proposed.err.join("\n"), /1 rule proposed in detect mode/);
  assert.match(proposed.err.join("\n"), /nothing was applied/);
  const suggested = readFileSync(output, "utf8");
  assert.ok(suggested.startsWith(POLICY.split("rules:")[0]!), "the file's head is kept");

  // --output where another user planted a file (a shared /tmp): the suggestion is not written
  // into their file, which they could edit before it is applied, nor through their link
  const planted = join(dir, "planted.yaml");
  writeFileSync(planted, "theirs\n", { mode: 0o666 });
  chmodSync(planted, 0o666);
  chownSync(planted, 65534, 65534);
  const victim = join(dir, "victim");
  writeFileSync(victim, "kept\n");
  const linked = join(dir, "linked.yaml");
  symlinkSync(victim, linked);
  for (const o of [planted, linked])
    assert.equal((await run({ policy: policyPath, since: "15d", output: o })).code, 0);
  const st = lstatSync(planted);
  assert.deepEqual([st.uid, st.mode & 0o022], [process.getuid?.(), 0], "a file of our own");
  assert.equal(readFileSync(planted, "utf8"), suggested);
  assert.equal(readFileSync(victim, "utf8"), "kept\n", "the link's target is untouched");
  assert.equal(readFileSync(linked, "utf8"), suggested);

  // --json: the whole answer
  const json = JSON.parse(
    (await run({ json: true, since: "15d" })).out.join("\n"),
  ) as SuggestAnswer;
  assert.deepEqual(
    json.rules.map((r) => [r.name, r.remote, r.hits > 0]),
    [["suggest-curl-out-1", ["*.example.co.uk"], true]],
  );
  assert.deepEqual(json.problems, []);

  // the suggestion applied 8 days ago (promotion counts the days after it was proposed): the
  // last week, curl allowed by it every day
  const applied = new Date(now - 8 * DAY).toISOString().slice(0, 10);
  running = suggested.replace(/moat suggest \d{4}-\d\d-\d\d:/, `moat suggest ${applied}:`);
  store.insertFlows(
    summaries(
      ["a", "b", "c"].map((l) => flow(`${l}.example.co.uk`, "allowed", "suggest-curl-out-1")),
      now,
    ),
  );
  const early = await run({ promote: true, "clean-days": "30" });
  const kept = /kept in detect: suggest-curl-out-1 \((\d+) clean days since \S+, 30 needed\)/.exec(
    early.err.join("\n"),
  );
  assert.ok(kept, early.err.join("\n"));
  // the days of the week applied, less the one it shares with the detections before
  assert.ok(Number(kept[1]) >= 5 && Number(kept[1]) <= 8, kept[0]);
  assert.deepEqual(early.out, [], "nothing promoted: no diff");
  const promoted = await run({ promote: true, "clean-days": "3" });
  assert.equal(promoted.code, 0);
  assert.ok(promoted.out.includes("-    mode: detect"), promoted.out.join("\n"));
  assert.ok(promoted.out.includes("+    mode: prevent"));
  assert.match(promoted.err.join("\n"), /promoted: suggest-curl-out-1/);

  // a refused policy file: its errors, exit 1
  writeFileSync(policyPath, "version: 1\nmode: sideways\n");
  const refused = await run({ policy: policyPath });
  assert.equal(refused.code, 1);
  assert.match(refused.err.join("\n"), /mode/);
});

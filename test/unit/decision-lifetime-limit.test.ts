// POST /v1/decisions over the API's unix socket with a lifetime longer than moat keeps a decision
// for (10 years): refused as a decision (422 EDECISION) naming the limit and `forever`, nothing
// stored; one of exactly 10 years is made.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parsePolicy, textOnlyHost } from "../../src/config/index.ts";
import { startApi } from "../../src/api/server.ts";
import { EventPipeline } from "../../src/observe/pipeline.ts";
import { acceptPolicyText } from "../../src/policy/index.ts";
import { DecisionStore } from "../../src/daemon/decision-store.ts";
import { LocalDecisions } from "../../src/daemon/local-decisions.ts";
import { testControl } from "../helpers/api-control.ts";
import { http } from "../helpers/api-client.ts";

const POLICY = "version: 1\nmode: prevent\ndefaults: { ingress: block, egress: allow }\n";

test("a lifetime over 10 years is refused naming the limit; 10 years is made", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), `moat-lifetime-${process.pid}-`));
  const store = new DecisionStore({ path: join(dir, "decisions.json"), log: () => {} });
  const model = parsePolicy(POLICY, "p.yaml");
  const decisions = new LocalDecisions({
    store,
    install: () => {
      const accepted = acceptPolicyText(POLICY, "p.yaml", {
        host: textOnlyHost,
        decisions: store.list(),
      });
      return Promise.resolve({ ok: accepted.policy !== undefined, generation: 2, errors: [] });
    },
    model: () => model,
    cut: () => 0,
    audit: () => {},
    log: () => {},
  });
  const pipeline = new EventPipeline();
  const control = testControl(pipeline, {
    decisions: () => decisions.view(),
    addDecision: (body, who) => decisions.add(body, who),
    removeDecision: (id, who) => decisions.remove(id, who),
    review: () => decisions.review(),
    answerReview: (answer, who) => decisions.answer(answer, who),
  });
  const socketPath = join(dir, "api.sock");
  const api = await startApi(control, [{ listen: `unix:${socketPath}` }]);
  t.after(async () => {
    decisions.close();
    await api.close();
    await pipeline.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const post = (lifetime: string) =>
    http(
      { socketPath },
      "POST",
      "/v1/decisions",
      `{"action":"allow","direction":"ingress","remote":"10.231.206.1","lifetime":"${lifetime}"}`,
    );

  for (const lifetime of ["200000000d", "3651d"]) {
    const r = await post(lifetime);
    assert.equal(r.status, 422, r.body);
    const { error } = JSON.parse(r.body) as { error: { code: string; details: string[] } };
    assert.equal(error.code, "EDECISION");
    assert.match(error.details.join("; "), /longer than 10 years \(3650d\).*forever/);
  }
  assert.deepEqual(store.list(), []);
  const tenYears = await post("3650d");
  assert.equal(tenYears.status, 200, tenYears.body);
});

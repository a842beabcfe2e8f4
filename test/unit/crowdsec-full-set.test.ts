// A bouncer's set at max_entries drops the bans past it; when room frees (a ban held is deleted
// or expires), the dropped ones come in: CrowdSec's stream sends only what changed, so while any
// was dropped the bouncer asks for every decision again.
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { startCrowdsec } from "../../src/daemon/crowdsec.ts";
import { dynamicSets } from "../../src/daemon/dynamic-sets.ts";
import { crowdsecModel } from "../helpers/crowdsec-model.ts";
import { startLapi } from "../helpers/crowdsec-lapi.ts";

test("bans dropped at max_entries come in once a held one is deleted", async (t) => {
  const { dir, url, keyFile, cscli } = await startLapi(t);
  const model = crowdsecModel(url, keyFile);
  const origin = model.sets.get("cs")?.origin;
  assert.ok(origin);
  origin.maxEntries = 2;
  const logs: string[] = [];
  const sets = dynamicSets({
    dir: join(dir, "store"),
    model: () => model,
    refresh: () => Promise.resolve(),
    generation: () => 1,
    audit: () => {},
    log: (line) => logs.push(line),
  });
  t.after(() => sets.close());
  const bans = ["10.77.0.12", "10.77.0.13", "10.77.0.14"];
  for (const ip of bans) cscli("decisions", "add", "--ip", ip, "--duration", "1h", "--reason", "t");
  const bouncer = startCrowdsec({ model: () => model, sets, log: (line) => logs.push(line) });
  t.after(() => bouncer.close());
  bouncer.applied();

  const entries = () => (sets.list()[0]?.entries ?? []).map((e) => e.entry).sort();
  const until = async (done: () => boolean, what: string) => {
    const end = Date.now() + 15_000;
    while (!done() && Date.now() < end) await new Promise((r) => setTimeout(r, 100));
    assert.ok(done(), `${what}; entries ${JSON.stringify(entries())}; log:\n${logs.join("\n")}`);
  };
  await until(() => entries().length === 2, "two bans held, one dropped");
  assert.match(logs[0] ?? "", /, 1 dropped \(max_entries\)$/);
  const [held] = entries();
  assert.ok(held);
  cscli("decisions", "delete", "--ip", held);
  const rest = bans.filter((ip) => ip !== held);
  await until(
    () => JSON.stringify(entries()) === JSON.stringify(rest),
    `with ${held} deleted, the other two bans held`,
  );
});

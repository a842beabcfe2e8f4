// moat's CrowdSec bouncer against CrowdSec's own local API (Debian's crowdsec, unpacked by
// set-up into .tools/crowdsec; the agent off, the central API off): a ban that cscli adds, on an
// address or a range, lands in the dynamic set with its decision's expiry, and leaves it when
// cscli deletes it; the bouncer key is one that cscli made.
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { startCrowdsec } from "../../src/daemon/crowdsec.ts";
import { dynamicSets } from "../../src/daemon/dynamic-sets.ts";
import { crowdsecModel } from "../helpers/crowdsec-model.ts";
import { startLapi } from "../helpers/crowdsec-lapi.ts";

test("the bouncer keeps its set to the bans of CrowdSec's own local API", async (t) => {
  const { dir, url, cscli, keyFile } = await startLapi(t);
  const model = crowdsecModel(url, keyFile);
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
  cscli("decisions", "add", "--ip", "203.0.113.9", "--duration", "1h", "--reason", "test");
  cscli("decisions", "add", "--range", "198.51.100.0/24", "--duration", "30m", "--reason", "test");
  const started = Date.now();
  const bouncer = startCrowdsec({ model: () => model, sets, log: (line) => logs.push(line) });
  t.after(() => bouncer.close());
  bouncer.applied(); // as the daemon calls it once the policy is in

  const entries = () => sets.list()[0]?.entries ?? [];
  const until = async (done: () => boolean, what: string) => {
    const end = Date.now() + 15_000;
    while (!done() && Date.now() < end) await new Promise((r) => setTimeout(r, 100));
    assert.ok(done(), `${what}; entries ${JSON.stringify(entries())}; log:\n${logs.join("\n")}`);
  };
  await until(() => entries().length === 2, "both bans in the set");
  const byEntry = new Map(entries().map((e) => [e.entry, Date.parse(e.expires ?? "")]));
  // each expires with its decision (the API gives the time left, as of its answer)
  const ip = byEntry.get("203.0.113.9") ?? 0;
  const range = byEntry.get("198.51.100.0/24") ?? 0;
  assert.ok(Math.abs(ip - (started + 3_600_000)) < 60_000, `ban on the address ends ${ip}`);
  assert.ok(Math.abs(range - (started + 1_800_000)) < 60_000, `ban on the range ends ${range}`);
  assert.match(logs[0] ?? "", /^crowdsec: set cs: \+2 -0 decisions, 2 entries$/);

  cscli("decisions", "delete", "--ip", "203.0.113.9");
  await until(
    () => entries().length === 1 && entries()[0]?.entry === "198.51.100.0/24",
    "the deleted ban leaves the set",
  );
});

// CrowdSec's local API answers are read as untrusted JSON: a decision that is not an object is
// counted skipped (one null made the whole poll fail, every poll, and the set kept stale bans),
// and a decision's duration is bounded like a `moat set add` timeout (100 years): a duration
// past what a date can hold was stored and then made `moat set list` throw.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MAX_ENTRY_TIMEOUT_SECONDS } from "../../src/config/dynamic-set-file.ts";
import { decisionChanges } from "../../src/daemon/crowdsec.ts";
import { dynamicSets } from "../../src/daemon/dynamic-sets.ts";
import { crowdsecModel } from "../helpers/crowdsec-model.ts";

const BAN = { value: "203.0.113.9", scope: "Ip", type: "ban", duration: "1h" };

test("a decision that is not an object is skipped, the others are taken", () => {
  const got = decisionChanges(
    { new: [null, 7, "x", [], BAN], deleted: [null, { ...BAN, value: "192.0.2.1" }] },
    1000,
  );
  assert.deepEqual(got, {
    adds: [{ entry: "203.0.113.9", expires: 1000 + 3_600_000 }],
    dels: ["192.0.2.1"],
    skipped: 4,
  });
});

test("a duration past 100 years is not stored as an expiry no date can hold", () => {
  const now = 1_700_000_000_000;
  const got = decisionChanges(
    {
      new: [
        { ...BAN, duration: "99999999999h" },
        { ...BAN, value: "192.0.2.1", duration: `${"9".repeat(400)}h` },
      ],
    },
    now,
  );
  for (const add of got.adds) {
    assert.ok(Number.isFinite(add.expires), `${add.entry}: ${add.expires}`);
    assert.ok((add.expires ?? 0) <= now + MAX_ENTRY_TIMEOUT_SECONDS * 1000, `${add.entry}`);
  }
});

test("the set a long decision went into still lists", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "moat-hostile-cs-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const model = crowdsecModel("http://127.0.0.1:1", join(dir, "key"));
  const sets = dynamicSets({
    dir: join(dir, "store"),
    model: () => model,
    refresh: () => Promise.resolve(),
    generation: () => 1,
    audit: () => {},
    log: () => {},
  });
  t.after(() => sets.close());
  const { adds, dels } = decisionChanges(
    { new: [BAN, { ...BAN, value: "192.0.2.1", duration: "99999999999h" }] },
    Date.now(),
  );
  await sets.bulk("cs", { adds, dels, replace: true }, "crowdsec decisions for set cs");
  const listed = sets.list()[0]?.entries ?? [];
  assert.ok(listed.some((e) => e.entry === "203.0.113.9"));
  for (const e of listed) assert.ok(e.expires === null || !Number.isNaN(Date.parse(e.expires)));
});

test("a decision's value is trimmed, for adds and deletes alike", () => {
  const got = decisionChanges(
    {
      new: [
        { ...BAN, value: "198.51.100.7\n" },
        { ...BAN, value: " 192.0.2.0/24\r\n" },
      ],
      deleted: [{ ...BAN, value: "198.51.100.7\n" }],
    },
    1000,
  );
  assert.deepEqual(got, {
    adds: [
      { entry: "198.51.100.7", expires: 1000 + 3_600_000 },
      { entry: "192.0.2.0/24", expires: 1000 + 3_600_000 },
    ],
    dels: ["198.51.100.7"],
    skipped: 0,
  });
});

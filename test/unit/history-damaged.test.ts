// A history file that is damaged (cut short, or not SQLite at all) is not opened: the reason says
// so and what to do, as waiting will not mend it; the daemon runs on without a history.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, statSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { HistoryWorker } from "../../src/observe/history/remote.ts";
import { HistoryStore } from "../../src/observe/history/store.ts";
import { fakeEvent } from "../helpers/events.ts";

test("a damaged history file is named as damaged, with what to do", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "moat-hdamaged-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));

  const garbage = join(dir, "garbage.db");
  writeFileSync(garbage, "not sqlite ".repeat(1000), { mode: 0o600 });
  const cut = join(dir, "cut.db");
  const store = new HistoryStore(cut);
  store.insert(Array.from({ length: 5000 }, (_, i) => fakeEvent({ connection: String(i) })));
  store.close();
  truncateSync(cut, Math.floor(statSync(cut).size / 2));

  for (const [path, why] of [
    [garbage, /file is not a database/],
    [cut, /database disk image is malformed/],
  ] as const) {
    const w = new HistoryWorker(path);
    t.after(() => w.close());
    await assert.rejects(w.ready, why);
    await assert.rejects(w.ready, /damaged: move it aside for moat to start a new one/);
    await assert.rejects(w.query({}), /damaged/);
  }
});

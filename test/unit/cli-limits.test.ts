// moat events --limit, moat stats --limit and moat top --rows take a count of 1 or more: what
// the API cannot answer as asked (0 rows, a negative count) is refused, not answered otherwise.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { UsageError, type Command } from "../../src/cli/command.ts";
import { eventsCommand } from "../../src/cli/commands/events.ts";
import { statsCommand } from "../../src/cli/commands/stats.ts";
import { topCommand } from "../../src/cli/commands/top.ts";
import { HistoryStore } from "../../src/observe/history/store.ts";
import { fakeEvent } from "../helpers/events.ts";
import { apiOverStore } from "../helpers/api-over-store.ts";

test("a count of 0 or less is refused by moat events, moat stats and moat top", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "moat-cli-limits-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const store = new HistoryStore(":memory:");
  t.after(() => store.close());
  store.insert(
    Array.from({ length: 5 }, (_, i) => fakeEvent({ rule: `r${i}`, connection: String(i) })),
  );
  const socket = await apiOverStore(t, store, dir);

  const run = async (command: Command, values: Record<string, string | boolean>) => {
    const out: string[] = [];
    try {
      await command.run(
        { values: { api: `unix:${socket}`, ...values }, positionals: [] },
        { out: (l) => out.push(l), err: () => {} },
      );
      return out;
    } catch (err) {
      if (err instanceof UsageError) return err.message;
      throw err;
    }
  };
  assert.match(String(await run(eventsCommand, { limit: "0" })), /--limit must be 1 or more/);
  assert.equal((await run(eventsCommand, { limit: "2" })).length, 2);
  assert.match(String(await run(statsCommand, { limit: "0" })), /--limit must be 1 or more/);
  for (const rows of ["-5", "0", "x"])
    assert.match(String(await run(topCommand, { once: true, json: true, rows })), /--rows/);
  const top = JSON.parse(String(await run(topCommand, { once: true, json: true, rows: "2" })));
  assert.equal(top.rules.length, 2);
});

// A new history store takes 16 KiB pages where its disk has room (a fifth less CPU an event than
// SQLite's 4 KiB: fewer pages and log frames a batch), and SQLite's 4 KiB on a nearly full disk,
// where a store with 16 KiB pages and its log would not fit; a store keeps the pages it was made
// with.
import { test } from "node:test";
import assert from "node:assert/strict";
import { copyFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { HistoryStore } from "../../src/observe/history/store.ts";
import { fakeEvent } from "../helpers/events.ts";
import { smallDisk } from "../helpers/small-disk.ts";

function pageSizeOf(path: string): number {
  const db = new Database(path, { readonly: true });
  try {
    return db.pragma("page_size", { simple: true }) as number;
  } finally {
    db.close();
  }
}

function madeAndClosed(path: string): void {
  const store = new HistoryStore(path);
  store.insert([fakeEvent({ connection: "first" })]);
  store.close();
}

test("a new store on a disk with room has 16 KiB pages, and keeps them", (t) => {
  const dir = mkdtempSync(join(tmpdir(), `moat-history-pages-${process.pid}-`));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, "history.db");
  madeAndClosed(path);
  assert.equal(pageSizeOf(path), 16384);
  madeAndClosed(path);
  assert.equal(pageSizeOf(path), 16384);
});

test("a new store on a small disk has SQLite's 4 KiB pages", (t) => {
  const { dir } = smallDisk(t, "8m", "moat-history-pages");
  const path = join(dir, "history.db");
  madeAndClosed(path);
  assert.equal(pageSizeOf(path), 4096);
  // moved to a disk with room, it keeps its 4 KiB pages and its events
  const roomy = mkdtempSync(join(tmpdir(), `moat-history-pages-${process.pid}-`));
  t.after(() => rmSync(roomy, { recursive: true, force: true }));
  copyFileSync(path, join(roomy, "history.db"));
  madeAndClosed(join(roomy, "history.db"));
  assert.equal(pageSizeOf(join(roomy, "history.db")), 4096);
  const store = new HistoryStore(join(roomy, "history.db"));
  t.after(() => store.close());
  assert.equal(store.stats().events, 2);
});

// A flood from many sources ends its second with a summary line for each of them: those lines
// reach the audit log together, one write after the window's last line, and every line is there.
import { test } from "node:test";
import assert from "node:assert/strict";
import { foldedLines } from "../../src/observe/repeat-summary.ts";
import { fakeEvent } from "../helpers/events.ts";

const SOURCES = 3000;
const EACH = 7;

test("a window's summary lines of a flood from many sources are written out once", () => {
  const lines: string[] = [];
  let writes = 0;
  const folded = foldedLines({ emit: (line) => lines.push(line), flush: () => writes++ });
  const batch = [];
  for (let s = 0; s < SOURCES; s++) {
    const ip = `198.51.${s >> 8}.${s & 255}`;
    for (let i = 0; i < EACH; i++) batch.push(fakeEvent({ remote: { ip, port: 1024 + i } }));
  }
  folded.write(batch);
  folded.close(); // the window ends: its summaries
  const summaries = lines.filter((l) => / more like this in the last second: /.test(l));
  assert.equal(summaries.length, SOURCES, "one summary line for each source");
  const counted = summaries.reduce((n, l) => n + Number(/ and (\d+) more/.exec(l)?.[1]), 0);
  const full = lines.length - summaries.length;
  assert.equal(full + counted, SOURCES * EACH, "every event is a line or counted in one");
  assert.equal(writes, 1, `the summary lines were written out ${writes} times`);
});

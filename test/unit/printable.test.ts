// printable(): text from outside shown escaped, one way only: distinct texts never print alike.
import { test } from "node:test";
import assert from "node:assert/strict";
import { printable } from "../../src/config/printable.ts";

test("control and invisible characters are escaped, and so is the backslash itself", () => {
  assert.equal(
    printable("a\nb\r\t\u001b[2J\u0085\u202e\ufeff"),
    "a\\nb\\r\\t\\x1b[2J\\x85\\u202e\\ufeff",
  );
  assert.equal(printable("C:\\temp"), "C:\\\\temp");
  assert.equal(printable("plain text, ünïcode"), "plain text, ünïcode");
});

test("a real newline and a backslash followed by n print differently", () => {
  const pairs = [
    ["evil\nname", "evil\\nname"],
    ["\u001b", "\\x1b"],
    ["\u202e", "\\u202e"],
    ["\\\n", "\\\\n"],
  ];
  for (const [a, b] of pairs)
    assert.notEqual(printable(a ?? ""), printable(b ?? ""), `${a} / ${b}`);
});

test("invisible characters outside the bidi block are escaped too", () => {
  assert.equal(
    printable("a\u061c\u00ad\u180e\ufff9\ufffb\ufe00\ufe0fz"),
    "a\\u061c\\xad\\u180e\\ufff9\\ufffb\\ufe00\\ufe0fz",
  );
  // tag characters are astral: one escape each, by code point
  assert.equal(printable("x\u{e0001}\u{e007f}y"), "x\\u{e0001}\\u{e007f}y");
  assert.equal(printable("emoji 🙂 stay"), "emoji 🙂 stay");
});

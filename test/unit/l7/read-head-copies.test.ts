// The relay's head reader keeps the bytes read so far where they are while more come: a client
// sending its first bytes one per segment costs copies in proportion to them, not their square
// (16 KiB a byte at a time would copy 128 MiB, each read copying all before it again).
import { test } from "node:test";
import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import type { Socket } from "node:net";
import { readHead } from "../../../src/l7/read-head.ts";

/** What readHead uses of a socket: its events, and pause/resume/unshift that do nothing here. */
class Segments extends EventEmitter {
  pause() {
    return this;
  }
  resume() {
    return this;
  }
  unshift() {}
}

test("a head sent a byte at a time is copied a bounded number of times over", async () => {
  const max = 16 * 1024;
  const socket = new Segments();
  // bytes the head held before each read that were found elsewhere after it (moved, so copied)
  let copied = 0;
  let seen: Buffer | null = null;
  const enough = (head: Buffer) => {
    if (seen && seen.length > 0) {
      const stayed = head.buffer === seen.buffer && head.byteOffset === seen.byteOffset;
      if (!stayed) copied += seen.length;
    }
    seen = head;
    return false;
  };
  const read = readHead(socket as unknown as Socket, Buffer.alloc(0), enough, 60_000, max);
  const line = Buffer.from(`GET /${"a".repeat(max)}`, "latin1");
  for (let i = 0; i < max; i++) socket.emit("data", line.subarray(i, i + 1));
  const { head, end } = await read;
  assert.equal(end, "full");
  assert.ok(head.equals(line.subarray(0, max)), "the head is the bytes as sent");
  assert.ok(copied <= 4 * max, `${copied} bytes copied again for a ${max}-byte head`);
});

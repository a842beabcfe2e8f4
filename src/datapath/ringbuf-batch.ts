// Splits a packed ring-buffer batch (u32 LE length, record, pad to 8) into record views.

export function* records(batch: Buffer): Generator<Buffer> {
  let at = 0;
  while (at + 4 <= batch.length) {
    const len = batch.readUInt32LE(at);
    const start = at + 4;
    yield batch.subarray(start, start + len);
    at = (start + len + 7) & ~7;
  }
}

/**
 * Calls `onRecord` with each record's view, in order: the event path's form of records(), without
 * a generator's step and result object for every record of a flood.
 */
export function forEachRecord(batch: Buffer, onRecord: (record: Buffer) => void): void {
  let at = 0;
  while (at + 4 <= batch.length) {
    const len = batch.readUInt32LE(at);
    const start = at + 4;
    onRecord(batch.subarray(start, start + len));
    at = (start + len + 7) & ~7;
  }
}

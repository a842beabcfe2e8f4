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

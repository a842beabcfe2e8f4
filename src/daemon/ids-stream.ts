// One direction of a flow as the ids path holds it (docs/policy.md, "ids"). TCP: the kernel's
// copies put in place by their offset (bpf/include/ids.h copies a TCP segment at its place in the
// stream: ahead of a hole, or again over bytes already copied until its receiver acknowledged
// them), compared where they cover bytes already copied, with the urgent bytes its receiver may
// take out of the stream; and the versions of its bytes the signatures are matched on. UDP: each
// datagram (one copy) is matched alone; the direction only counts what was copied.
import { IdsConst } from "../datapath/index.ts";

/**
 * A UDP direction: its datagrams are not a stream (each is matched alone, from its own first
 * byte, as Suricata does), so only how far the kernel's copies went is kept: one copy a datagram,
 * placed at the bytes copied before it, up to the window and IdsConst.maxPackets copies.
 */
export class CopiedDatagrams {
  private copied = 0;
  private count = 0;

  add(offset: number, data: Buffer): void {
    this.copied = Math.max(this.copied, Math.min(offset + data.length, IdsConst.maxBytes));
    this.count++;
  }

  /** No more datagrams of this direction will be copied. */
  final(window: number): boolean {
    return this.copied >= window || this.count >= IdsConst.maxPackets;
  }
}

/** What keeps a direction from being read as its receiver reads it. */
export type StreamTrouble = "overlap" | "urgent";

export class CopiedStream {
  /** Each byte as first copied, by its place (a place not copied yet holds 0). */
  private first: Buffer = Buffer.alloc(0);
  /** Each byte as last copied, from the first copy that disagreed with the first version on. */
  private last: Buffer | undefined;
  /** The places copied: sorted, disjoint [start, end) ranges. */
  private have: [number, number][] = [];
  /** Places of the bytes urgent pointers named (Linux takes them out unless SO_OOBINLINE). */
  private readonly urgent = new Set<number>();
  /** Copies that brought bytes at new places (the kernel makes at most IdsConst.maxPackets). */
  private grew = 0;
  /** The end of the furthest byte copied. */
  private high = 0;

  /** Puts a copy in place; returns what it showed of the stream's troubles. */
  add(offset: number, data: Buffer, urgent: number | null): StreamTrouble[] {
    const trouble: StreamTrouble[] = [];
    if (urgent !== null && urgent < IdsConst.maxBytes && !this.urgent.has(urgent)) {
      this.urgent.add(urgent);
      // the receiver keeps an urgent byte in the stream when a later pointer comes before it
      // read that far: with two, which ones it read depends on when it read
      if (this.urgent.size === 2) trouble.push("urgent");
    }
    const end = Math.min(offset + data.length, IdsConst.maxBytes);
    if (end <= offset) return trouble;
    const bytes = data.subarray(0, end - offset);
    this.grow(end);
    if (this.differs(offset, bytes)) {
      this.last ??= Buffer.from(this.first);
      trouble.push("overlap");
    }
    this.fill(offset, bytes);
    if (this.last) bytes.copy(this.last, offset);
    if (end > this.high) {
      this.grew++;
      this.high = end;
    }
    this.mark(offset, end);
    return trouble;
  }

  /** Bytes from the start without a hole: what the receiver's application can have read. */
  get ready(): number {
    const head = this.have[0];
    return head && head[0] === 0 ? head[1] : 0;
  }

  /**
   * No more bytes will come: `window` bytes are here, or the copies of new places are spent and
   * no hole is left for another copy to fill.
   */
  final(window: number): boolean {
    const ready = this.ready;
    return ready >= window || (this.grew >= IdsConst.maxPackets && ready >= this.high);
  }

  /**
   * The bytes the receiver may read, one char a byte: as first copied and as last copied, each
   * with and without the urgent bytes (distinct versions only).
   */
  versions(): string[] {
    const ready = this.ready;
    const bases: Buffer[] = [this.first.subarray(0, ready)];
    if (this.last) bases.push(this.last.subarray(0, ready));
    const urgent = [...this.urgent].filter((u) => u < ready).sort((a, b) => a - b);
    const out = new Set<string>();
    for (const base of bases) {
      out.add(base.toString("latin1"));
      if (urgent.length > 0) out.add(withoutPlaces(base, urgent).toString("latin1"));
    }
    return [...out];
  }

  private grow(end: number): void {
    if (end <= this.first.length) return;
    const size = Math.min(IdsConst.maxBytes, Math.max(end, 2 * this.first.length));
    this.first = Buffer.concat([this.first], size);
    if (this.last) this.last = Buffer.concat([this.last], size);
  }

  /** Whether `bytes` at `offset` disagree with the first version where it was copied. */
  private differs(offset: number, bytes: Buffer): boolean {
    const end = offset + bytes.length;
    for (const [from, to] of this.have) {
      const a = Math.max(from, offset);
      const b = Math.min(to, end);
      if (a >= b) continue;
      if (!this.first.subarray(a, b).equals(bytes.subarray(a - offset, b - offset))) return true;
    }
    return false;
  }

  /** The first version takes the bytes at places not copied before. */
  private fill(offset: number, bytes: Buffer): void {
    let at = offset;
    const end = offset + bytes.length;
    for (const [from, to] of this.have) {
      if (to <= at) continue;
      if (from >= end) break;
      if (from > at) bytes.copy(this.first, at, at - offset, from - offset);
      at = Math.max(at, to);
    }
    if (at < end) bytes.copy(this.first, at, at - offset);
  }

  private mark(start: number, end: number): void {
    const out: [number, number][] = [];
    for (const r of this.have) {
      if (r[1] < start || r[0] > end) out.push(r);
      else {
        start = Math.min(start, r[0]);
        end = Math.max(end, r[1]);
      }
    }
    out.push([start, end]);
    this.have = out.sort((a, b) => a[0] - b[0]);
  }
}

function withoutPlaces(bytes: Buffer, places: readonly number[]): Buffer {
  const parts: Buffer[] = [];
  let at = 0;
  for (const p of places) {
    parts.push(bytes.subarray(at, p));
    at = p + 1;
  }
  parts.push(bytes.subarray(at));
  return Buffer.concat(parts);
}

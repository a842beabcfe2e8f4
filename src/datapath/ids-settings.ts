// A slot's ids settings (struct moat_ids, bpf/include/ids.h) and when they began to choose flows.
// A direction of a flow is read from its first bytes only: a flow older than the settings it is
// judged by may have passed its first bytes unread (ids was off, or another sample left it out),
// so the kernel does not begin copying a direction of such a flow. Settings that choose the same
// flows as the live ones keep their time, so a reload that leaves ids as it was goes on reading
// the flows in progress; other settings begin when their slot goes live.
import { ids as idsCodec } from "./abi.ts";

/** Not live yet: no flow is older than these settings until their slot goes live. */
const NOT_YET = 0xffff_ffff_ffff_ffffn;

export interface IdsChoice {
  /** Of each direction of a flow (0: nothing is copied). */
  bytes: number;
  /** 1 in this many flows. */
  sample: number;
}

const chooseAlike = (a: IdsChoice, b: IdsChoice) =>
  a.bytes > 0 && b.bytes > 0 && Math.max(1, a.sample) === Math.max(1, b.sample);

/** The idle slot's settings for `next`, given the live slot's as the kernel holds them. */
export function idsSettings(next: IdsChoice, live: Buffer | undefined): Buffer {
  const was = live ? idsCodec.decode(live) : undefined;
  const since = was && chooseAlike(was, next) ? was.since_ns : NOT_YET;
  return idsCodec.encode({ bytes: next.bytes, pad: 0, sample: next.sample, since_ns: since });
}

/** Once their slot is live: the settings that begin now (undefined: they kept the old time). */
export function idsSettingsBegun(settings: Buffer, nowNs: bigint): Buffer | undefined {
  const s = idsCodec.decode(settings);
  return s.since_ns === NOT_YET ? idsCodec.encode({ ...s, since_ns: nowNs }) : undefined;
}

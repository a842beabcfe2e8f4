// A conntrack layout older than this build's, for the migration tests: layout 0 of the
// `conntrack` group (a test fixture, never a real build's). Its value holds struct moat_ct's
// facts in another order, the owner first, without the rate limit's credit, the sequence ends and
// the ids state, and 8 more bytes: 144 bytes. The converter registered here turns it into this
// build's layout.
import { ct } from "../../src/datapath/abi.ts";
import { registerConverter } from "../../src/datapath/map-migration.ts";
import { MAP_GROUPS } from "../../src/datapath/pinned-maps.ts";
import { defineStruct } from "../../src/datapath/struct.ts";

export const OLD_CT_VERSION = 0;

export const oldCt = defineStruct("moat_ct (layout 0, test fixture)", 144, {
  owner: { offset: 0, bytes: 48 },
  id: { offset: 48, type: "u64" },
  created_ns: { offset: 56, type: "u64" },
  last_ns: { offset: 64, type: "u64" },
  deadline_ns: { offset: 72, type: "u64" },
  packets: { offset: 80, bytes: 16 },
  bytes: { offset: 96, bytes: 16 },
  rule: { offset: 112, type: "u32" },
  generation: { offset: 116, type: "u32" },
  ifindex: { offset: 120, type: "u32" },
  flags: { offset: 124, type: "u32" },
  initiator: { offset: 128, type: "u8" },
  direction: { offset: 129, type: "u8" },
  verdict: { offset: 130, type: "u8" },
  mode: { offset: 131, type: "u8" },
  tcp_state: { offset: 132, type: "u8" },
  icmp_type: { offset: 133, type: "u8" },
  icmp_code: { offset: 134, type: "u8" },
});

/** An entry of this build's layout written in layout 0 (what the test plants). */
export const toOldCt = (value: Buffer): Buffer => oldCt.encode(ct.decode(value));

/** Registers conntrack 0 -> this build's version: the table converted, the rest kept. */
export function registerOldCtConverter(
  convert = (value: Buffer) => ct.encode(oldCt.decode(value)),
) {
  registerConverter({
    group: "conntrack",
    from: OLD_CT_VERSION,
    to: MAP_GROUPS.conntrack?.version ?? 1,
    maps: {
      conntrack: { convert: (key, value) => ({ key, value: convert(value) }) },
      frags: { keep: true },
      counters: { keep: true },
    },
  });
}

// Codecs for every struct in bpf/include/moat_abi.h, and its enums.
import { defineStruct } from "./struct.ts";

export const Counter = {
  pass: 0,
  drop: 1,
  nonIp: 2,
  malformed: 3,
  eventLost: 4,
  max: 8,
} as const;

export const EventType = { allowed: 1, blocked: 2, detected: 3, closed: 4 } as const;
export const Hook = { xdpIngress: 1, tcEgress: 2 } as const;

export const lpm4Key = defineStruct("moat_lpm4_key", 8, {
  prefixlen: { offset: 0, type: "u32" },
  addr: { offset: 4, bytes: 4 },
});

export const lpm6Key = defineStruct("moat_lpm6_key", 20, {
  prefixlen: { offset: 0, type: "u32" },
  addr: { offset: 4, bytes: 16 },
});

export const event = defineStruct("moat_event", 64, {
  ts_ns: { offset: 0, type: "u64" },
  saddr: { offset: 8, bytes: 16 },
  daddr: { offset: 24, bytes: 16 },
  sport: { offset: 40, type: "u16" },
  dport: { offset: 42, type: "u16" },
  ifindex: { offset: 44, type: "u32" },
  rule: { offset: 48, type: "u32" },
  type: { offset: 52, type: "u8" },
  hook: { offset: 53, type: "u8" },
  family: { offset: 54, type: "u8" },
  protocol: { offset: 55, type: "u8" },
  icmp_type: { offset: 56, type: "u8" },
  icmp_code: { offset: 57, type: "u8" },
});

/** Every codec, for the BTF layout check. */
export const codecs = [lpm4Key, lpm6Key, event];

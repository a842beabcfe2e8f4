// The converters of moat's own layout changes (docs/datapath.md, "When a layout changed"), one
// per (group, from, to) where a group's version was raised. A group's change with none here
// starts that group empty.
import { client, ct, CtFlag, endpoint, idsFlow } from "./abi.ts";
import { defineStruct } from "./struct.ts";
import { type Converted, registerConverter } from "./map-migration.ts";

// policy 2 -> 3 added the name bindings (tbl_names), a fourth table image and moat_rule.flags.
// Nothing of layout 2 is worth carrying: the first apply rebuilds the policy slots, in the new
// layout, before any link changes (a reload does the same), layout 2 holds no name bindings, and
// the rule counters are the old generation's (every reload starts new ones).
registerConverter({
  group: "policy",
  from: 2,
  to: 3,
  maps: {},
  note: "the policy slots are rebuilt by the first apply; layout 2 holds no name bindings",
});

// policy 3 -> 4 added the rate limits (tbl_limits, MOAT_RULE_LIMITED): as for 2 -> 3, the first
// apply rebuilds the policy slots in the new layout before any link changes; from layout 2 the
// same, and layout 2 holds no name bindings either.
for (const from of [2, 3])
  registerConverter({
    group: "policy",
    from,
    to: 4,
    maps: {},
    note:
      from === 2
        ? "the policy slots are rebuilt by the first apply; layout 2 holds no name bindings"
        : "the policy slots are rebuilt by the first apply",
  });

// policy 5 -> 6 added ids_config: as above, the first apply rebuilds the policy slots
for (const from of [2, 3, 4, 5])
  registerConverter({
    group: "policy",
    from,
    to: 6,
    maps: {},
    note:
      from === 2
        ? "the policy slots are rebuilt by the first apply; layout 2 holds no name bindings"
        : "the policy slots are rebuilt by the first apply",
  });

// policy 4 -> 5 widened scrub_config (the IP header's normalisation): as above, the first apply
// rebuilds the policy slots, scrub_config with them, before any link changes.
for (const from of [2, 3, 4])
  registerConverter({
    group: "policy",
    from,
    to: 5,
    maps: {},
    note:
      from === 2
        ? "the policy slots are rebuilt by the first apply; layout 2 holds no name bindings"
        : "the policy slots are rebuilt by the first apply",
  });

// policy 6 -> 7 folds process combination steps (moat_meta.proc_folds): an older program would
// read a folded table as unfolded, so nothing is shared; as above, the first apply rebuilds the
// policy slots before any link changes
for (const from of [2, 3, 4, 5, 6])
  registerConverter({
    group: "policy",
    from,
    to: 7,
    maps: {},
    note:
      from === 2
        ? "the policy slots are rebuilt by the first apply; layout 2 holds no name bindings"
        : "the policy slots are rebuilt by the first apply",
  });

// policy 7 -> 8 widened ids_config (when its settings began): as above, the first apply rebuilds
// the policy slots, ids_config with them, before any link changes
for (const from of [2, 3, 4, 5, 6, 7])
  registerConverter({
    group: "policy",
    from,
    to: 8,
    maps: {},
    note:
      from === 2
        ? "the policy slots are rebuilt by the first apply; layout 2 holds no name bindings"
        : "the policy slots are rebuilt by the first apply",
  });

// policy 8 -> 9 added the macvlans by lower device and MAC address (tbl_proc_stacked,
// moat_meta.stacked): as above, the first apply rebuilds the policy slots, the new map with them,
// before any link changes
for (const from of [2, 3, 4, 5, 6, 7, 8])
  registerConverter({
    group: "policy",
    from,
    to: 9,
    maps: {},
    note:
      from === 2
        ? "the policy slots are rebuilt by the first apply; layout 2 holds no name bindings"
        : "the policy slots are rebuilt by the first apply",
  });

// policy 9 -> 10 made the arrays of tbl_dir4, tbl_u32 and tbl_rules mmapable: an outer map
// takes only inner maps of its template's flags, so nothing is shared; as above, the first apply
// rebuilds the policy slots before any link changes
for (const from of [2, 3, 4, 5, 6, 7, 8, 9])
  registerConverter({
    group: "policy",
    from,
    to: 10,
    maps: {},
    note:
      from === 2
        ? "the policy slots are rebuilt by the first apply; layout 2 holds no name bindings"
        : "the policy slots are rebuilt by the first apply",
  });

/** Counters per CPU in each conntrack layout. */
const COUNTERS_IN_LAYOUT: Record<number, number> = {
  1: 32,
  2: 38,
  3: 41,
  4: 43,
  5: 43,
  6: 43,
  7: 43,
};

/** A per-CPU counters value widened to another layout's count (new counters start at zero). */
const widenCounters =
  (from: number, to: number) =>
  (key: Buffer, value: Buffer): Converted => {
    const before = (COUNTERS_IN_LAYOUT[from] ?? 0) * 16;
    const after = (COUNTERS_IN_LAYOUT[to] ?? 0) * 16;
    const cpus = Math.floor(value.length / before);
    const out = Buffer.alloc(cpus * after);
    for (let cpu = 0; cpu < cpus; cpu++)
      value.copy(out, cpu * after, cpu * before, (cpu + 1) * before);
    return { key, value: out };
  };

// conntrack 1 -> 2 -> 3 -> 4: the counters gained the rate limits' and scrubbing's, then the IP
// header scrubbing's, then the ids copies' (zero to start); the connections and fragments are
// kept as they are (none has MOAT_CT_IDS_DONE: an old connection is read from its next packets
// only if it is still within its first ones)
for (const [from, to] of [
  [1, 2],
  [1, 3],
  [2, 3],
  [1, 4],
  [2, 4],
  [3, 4],
] as const)
  registerConverter({
    group: "conntrack",
    from,
    to,
    maps: {
      conntrack: { keep: true },
      frags: { keep: true },
      counters: { convert: widenCounters(from, to) },
    },
  });

/** moat_ct in layouts 1-4: layout 6's facts without the rate limit's credit, the sequence ends
 * and the ids state. */
const ctBefore5 = defineStruct("moat_ct (layouts 1-4)", 136, {
  id: { offset: 0, type: "u64" },
  created_ns: { offset: 8, type: "u64" },
  last_ns: { offset: 16, type: "u64" },
  deadline_ns: { offset: 24, type: "u64" },
  packets: { offset: 32, bytes: 16 },
  bytes: { offset: 48, bytes: 16 },
  rule: { offset: 64, type: "u32" },
  generation: { offset: 68, type: "u32" },
  ifindex: { offset: 72, type: "u32" },
  flags: { offset: 76, type: "u32" },
  initiator: { offset: 80, type: "u8" },
  direction: { offset: 81, type: "u8" },
  verdict: { offset: 82, type: "u8" },
  mode: { offset: 83, type: "u8" },
  tcp_state: { offset: 84, type: "u8" },
  icmp_type: { offset: 85, type: "u8" },
  icmp_code: { offset: 86, type: "u8" },
  owner: { offset: 88, bytes: 48 },
});

/** moat_ct in layout 5: layout 6's without the sequence ends (the owner and ids state 8 bytes
 * earlier, nothing after them). */
const ct5 = defineStruct("moat_ct (layout 5)", 160, {
  ...ctBefore5.fields,
  limit_credit: { offset: 87, type: "u8" },
  limit_until: { offset: 88, type: "u64" },
  owner: { offset: 96, bytes: 48 },
  ids: { offset: 144, bytes: 16 },
});

// conntrack 1..4 -> 6 and 7: moat_ct grew by a rate limit's credit (none to start: the next
// packet asks its lease), the ids signatures' copy state, which was in ids_flows, and each side's
// sequence end (none known: each side's next segment sets it); a connection open before is not
// read by the signatures any more (MOAT_CT_IDS_DONE), as its copies so far are not carried. Layout
// 7's entries are layout 6's, in a table of one entry more (a converted map is created in this
// build's size)
for (const to of [6, 7])
  for (const from of [1, 2, 3, 4])
    registerConverter({
      group: "conntrack",
      from,
      to,
      maps: {
        conntrack: {
          convert: (key, value) => {
            const old = ctBefore5.decode(value);
            const flags = old.flags | CtFlag.idsDone;
            const entry = {
              ...old,
              flags,
              limit_until: 0n,
              limit_credit: 0,
              ids: Buffer.alloc(idsFlow.size),
            };
            return { key, value: ct.encode(entry) };
          },
        },
        frags: { keep: true },
        counters: from === 4 ? { keep: true } : { convert: widenCounters(from, to) },
      },
      note: "connections open before are not read by the ids signatures",
    });

// conntrack 5 -> 6 and 7: moat_ct holds each side's sequence end, none known for a connection
// open before (until each side's next segment sets it, a reset from it is taken as before)
for (const to of [6, 7])
  registerConverter({
    group: "conntrack",
    from: 5,
    to,
    maps: {
      conntrack: { convert: (key, value) => ({ key, value: ct.encode(ct5.decode(value)) }) },
      frags: { keep: true },
      counters: { keep: true },
    },
  });

// conntrack 6 -> 7: the table holds one entry more than the connections it is sized for (twice
// the buckets at a power of two): every connection is copied as it is into the larger table; the
// fragment records (the same size) and the counters are kept as they are
registerConverter({
  group: "conntrack",
  from: 6,
  to: 7,
  maps: {
    conntrack: { keep: true },
    frags: { keep: true },
    counters: { keep: true },
  },
});

// redirects 1 -> 2: the originals' key is moat_client, the endpoint with a network namespace.
// A record carried is kept for moat's namespace (0), where layout 1 read every record: a client
// of the DNS proxy's sockets in another namespace is found by its proxy again from its next send.
registerConverter({
  group: "redirects",
  from: 1,
  to: 2,
  maps: {
    redirect_targets: { keep: true },
    redirect_exempt: { keep: true },
    originals: {
      convert: (key, value) => ({
        key: client.encode({ ...endpoint.decode(key), netns: 0n }),
        value,
      }),
    },
  },
  note: "a container's client in the middle of a DNS query may be refused once",
});

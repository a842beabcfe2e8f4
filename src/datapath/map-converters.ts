// The converters of moat's own layout changes (docs/datapath.md, "When a layout changed"), one
// per (group, from, to) where a group's version was raised. A group's change with none here
// starts that group empty.
import { registerConverter } from "./map-migration.ts";

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

/** Bytes of one CPU's counters in conntrack layout 1 (32 counters) and 2 (38). */
const COUNTERS_V1 = 32 * 16;
const COUNTERS_V2 = 38 * 16;

// conntrack 1 -> 2: the counters gained the rate limits' and scrubbing's (zero to start); the
// connections and fragments are kept as they are
registerConverter({
  group: "conntrack",
  from: 1,
  to: 2,
  maps: {
    conntrack: { keep: true },
    frags: { keep: true },
    counters: {
      convert: (key, value) => {
        const cpus = Math.floor(value.length / COUNTERS_V1);
        const out = Buffer.alloc(cpus * COUNTERS_V2);
        for (let cpu = 0; cpu < cpus; cpu++)
          value.copy(out, cpu * COUNTERS_V2, cpu * COUNTERS_V1, (cpu + 1) * COUNTERS_V1);
        return { key, value: out };
      },
    },
  },
});

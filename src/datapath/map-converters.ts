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

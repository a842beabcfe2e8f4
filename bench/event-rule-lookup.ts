// What the daemon does with each kernel event before its sinks, at a big policy: the feed an
// event's rule matched through (feedOf) and the quarantine its rule starts (the quarantiner) each
// look the event's rule up by name. CPU µs an event at 100k rules (bench/compile.ts's mixed
// policy, with a set, and with one quarantine rule), against a walk of the rules by name (how both
// looked the rule up before the index of src/policy/rule-named.ts).
//
//   node bench/event-rule-lookup.ts [RULES]     (default 100000)
import { quarantiner } from "../src/daemon/quarantine.ts";
import { feedOf } from "../src/policy/index.ts";
import { acceptPolicyOffThread, stopAcceptWorker } from "../src/host/index.ts";
import type { MoatEvent } from "../src/datapath/index.ts";
import { mixedPolicy } from "./compile.ts";

const rules = Number(process.argv[2] ?? 100_000);
const QUARANTINE =
  "  - { name: q, direction: egress, action: block, quarantine: { set: hold, timeout: 1h }, layer4: { protocol: tcp, port: [9] } }\n";
const text = mixedPolicy(rules)
  .replace(
    "rules:\n",
    `sets:\n  ioc: [192.0.2.0/24]\n  hold: { dynamic: true }\nrules:\n${QUARANTINE}`,
  )
  .replace(/\n$/, "\n");
const accepted = await acceptPolicyOffThread(text, "bench.yaml");
await stopAcceptWorker();
const model = accepted.policy?.model;
if (!model) throw new Error("the bench policy did not check");
const quarantine = quarantiner({
  model: () => model,
  sets: { bulk: () => Promise.resolve({ entries: 1, dropped: 0 }) },
  log: () => {},
});
// an event of the default rule: the last one a walk finds
const event = {
  type: "blocked",
  rule: "default",
  local: { ip: "10.0.0.1", port: 40000 },
  remote: { ip: "192.0.2.1", port: 443 },
} as MoatEvent;

const cases: Record<string, () => unknown> = {
  quarantiner: () => quarantine(event),
  feedOf: () => feedOf(model, event.rule, event.remote.ip),
  "a walk of the rules by name": () => model.rules.find((r) => r.name === event.rule),
};
const rows = Object.entries(cases).map(([stage, run]) => {
  for (let i = 0; i < 200; i++) run();
  const n = 2000;
  const before = process.cpuUsage();
  for (let i = 0; i < n; i++) run();
  const used = process.cpuUsage(before);
  return { stage, usPerEvent: Math.round(((used.user + used.system) / n) * 100) / 100 };
});
console.log(`${model.rules.length} rules`);
console.table(rows);

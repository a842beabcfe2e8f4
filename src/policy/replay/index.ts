// What-if replay of stored events through a draft policy (docs/console.md, docs/api.md).
export { Replay, type ReplayOptions } from "./engine.ts";
export { storedFacts, type StoredEvent, type StoredLayer7 } from "./stored-facts.ts";
export type {
  Change,
  ChangeList,
  Judged,
  ReplayGroup,
  ReplayReport,
  ReplaySample,
  Verdict,
} from "./report.ts";
export { CHANGES } from "./report.ts";

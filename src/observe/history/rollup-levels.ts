// The flow statistics' levels: each one's bucket and how long its rows are kept.

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

export type RollupLevel = "minute" | "hour" | "day";

/** Each level's bucket and how long its rows are kept. */
export const ROLLUP_LEVELS: readonly { level: RollupLevel; bucketMs: number; keepMs: number }[] = [
  { level: "minute", bucketMs: MINUTE, keepMs: 2 * DAY },
  { level: "hour", bucketMs: HOUR, keepMs: 35 * DAY },
  { level: "day", bucketMs: DAY, keepMs: 400 * DAY },
];

// `failure.events_lost` (docs/policy.md, "failure"): what moat does when the kernel loses events
// (its ring buffer was full). They are always counted and logged (`report`, the default);
// `notify` also sends a notice with the count through every sink, at most one per loss report.
export const EVENTS_LOST_CHOICES = ["report", "notify"] as const;
export type EventsLostChoice = (typeof EVENTS_LOST_CHOICES)[number];

/** The policy's choice, with its default. */
export function eventsLostChoice(doc: {
  failure?: { events_lost?: EventsLostChoice };
}): EventsLostChoice {
  return doc.failure?.events_lost ?? "report";
}

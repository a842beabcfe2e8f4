// A point in time as an API client gives it: ms since the epoch or an ISO 8601 time that says
// its offset. The daemon never reads a time in its own zone: the client's may be another.

/** An ISO 8601 time with its offset (Z, +01:00): the daemon's own zone is never guessed. */
const ISO_TIME =
  /^(\d{4})-(\d{2})-(\d{2})T([01]\d|2[0-3]):[0-5]\d(?::[0-5]\d(?:\.\d{1,9})?)?(?:Z|[+-](?:[01]\d|2[0-3]):?[0-5]\d)$/;

/** ms since the epoch (all digits) or an ISO time with an offset -> ms; NaN if neither. */
export function timeParam(text: string): number {
  if (/^\d+$/.test(text)) return Number(text);
  const m = ISO_TIME.exec(text);
  if (!m) return Number.NaN;
  // Date.parse would carry 30 February into March
  const [y, mo, d] = m.slice(1, 4).map(Number) as [number, number, number];
  const day = new Date(Date.UTC(y, mo - 1, d));
  if (day.getUTCMonth() !== mo - 1 || day.getUTCDate() !== d) return Number.NaN;
  return Date.parse(text);
}

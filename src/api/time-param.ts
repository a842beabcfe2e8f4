// A point in time as an API client gives it: ms since the epoch or an ISO 8601 time that says
// its offset. The daemon never reads a time in its own zone: the client's may be another.

/** An ISO 8601 / RFC 3339 time with its offset (Z, +01:00): the daemon's own zone is never
 * guessed. */
const ISO_TIME =
  /^(\d{4})-(\d{2})-(\d{2})[Tt ]([01]\d|2[0-3]):[0-5]\d(?::[0-5]\d(?:\.\d{1,9})?)?(?:[Zz]|[+-](?:[01]\d|2[0-3]):?[0-5]\d)$/;

/** The latest time a Date holds, in ms since the epoch. */
const MAX_TIME_MS = 8.64e15;

/** A number of ms a Date can hold (1970 on), else NaN. */
export const timeMs = (ms: number): number =>
  Number.isInteger(ms) && ms >= 0 && ms <= MAX_TIME_MS ? ms : Number.NaN;

/** ms since the epoch (all digits) or an ISO time with an offset -> ms; NaN if neither, or if no
 * Date can hold it. */
export function timeParam(text: string): number {
  if (/^\d+$/.test(text)) return timeMs(Number(text));
  const m = ISO_TIME.exec(text);
  if (!m) return Number.NaN;
  // Date.parse would carry 30 February into March
  const [y, mo, d] = m.slice(1, 4).map(Number) as [number, number, number];
  const day = new Date(Date.UTC(y, mo - 1, d));
  if (day.getUTCMonth() !== mo - 1 || day.getUTCDate() !== d) return Number.NaN;
  return timeMs(Date.parse(text.replace(" ", "T").toUpperCase()));
}

// Names with non-ASCII letters -> the A-label form DNS carries ("bücher.example" ->
// "xn--bcher-kva.example"), so a policy may be written either way and matches what answers say.
// Pure (src/config imports nothing from node:, so url.domainToASCII is not available): the
// Punycode encoder of RFC 3492, section 6.3. Labels are NFC-normalised and lower-cased first;
// the further mappings of UTS #46 (e.g. "ß" kept or not) are not applied (docs/policy.md, "Names").

const BASE = 36;
const T_MIN = 1;
const T_MAX = 26;
const SKEW = 38;
const DAMP = 700;
const INITIAL_BIAS = 72;
const INITIAL_N = 128;

function adapt(delta: number, points: number, first: boolean): number {
  let d = first ? Math.floor(delta / DAMP) : Math.floor(delta / 2);
  d += Math.floor(d / points);
  let k = 0;
  while (d > ((BASE - T_MIN) * T_MAX) >> 1) {
    d = Math.floor(d / (BASE - T_MIN));
    k += BASE;
  }
  return k + Math.floor(((BASE - T_MIN + 1) * d) / (d + SKEW));
}

/** 0..25 -> a..z, 26..35 -> 0..9. */
const digit = (d: number): string => String.fromCharCode(d < 26 ? 97 + d : 22 + d);

/** One label's Punycode (without the "xn--" prefix). */
export function punycodeEncode(label: string): string {
  const points = Array.from(label, (c) => c.codePointAt(0) ?? 0);
  let out = points
    .filter((p) => p < 0x80)
    .map((p) => String.fromCharCode(p))
    .join("");
  const basic = out.length;
  let handled = basic;
  if (basic > 0) out += "-";
  let n = INITIAL_N;
  let delta = 0;
  let bias = INITIAL_BIAS;
  while (handled < points.length) {
    const m = Math.min(...points.filter((p) => p >= n));
    delta += (m - n) * (handled + 1);
    n = m;
    for (const p of points) {
      if (p < n) delta++;
      if (p !== n) continue;
      let q = delta;
      for (let k = BASE; ; k += BASE) {
        const t = k <= bias ? T_MIN : k >= bias + T_MAX ? T_MAX : k - bias;
        if (q < t) break;
        out += digit(t + ((q - t) % (BASE - t)));
        q = Math.floor((q - t) / (BASE - t));
      }
      out += digit(q);
      bias = adapt(delta, handled + 1, handled === basic);
      delta = 0;
      handled++;
    }
    delta++;
    n++;
  }
  return out;
}

const isAscii = (text: string): boolean => [...text].every((c) => (c.codePointAt(0) ?? 0) < 0x80);

/** Dots as IDNA reads them: the ideographic and full-width full stops separate labels too. */
const DOTS = /[\u3002\uff0e\uff61]/g;

/** A name (or pattern) with every non-ASCII label in its A-label form; lower-cased. */
export function toAsciiName(text: string): string {
  const name = text.normalize("NFC").replace(DOTS, ".").toLowerCase();
  if (isAscii(name)) return name;
  return name
    .split(".")
    .map((label) => (isAscii(label) ? label : `xn--${punycodeEncode(label)}`))
    .join(".");
}

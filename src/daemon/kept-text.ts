// The running policy's text, kept deflated: the daemon reads it only when asked for it (the API's
// policy, a trial's revert, a confirm's save, a fleet check), and a big policy's text is as large
// as its file (15 MB at 100k rules; ~2 MB deflated). Deflated off the event loop once kept; read
// back (inflated, ~40 ms at 100k rules) at each read.
import { deflateRaw, inflateRawSync } from "node:zlib";

/** Shorter texts are kept as they are: deflating them would save little. */
export const DEFLATE_FROM = 64 * 1024;

/** String.prototype.isWellFormed (ES2024, in Node 24; not in the compiler's lib here). */
const wellFormed = (text: string): boolean =>
  (text as string & { isWellFormed(): boolean }).isWellFormed();

export class KeptText {
  private kept: string | Buffer;

  constructor(text: string, deflateFrom = DEFLATE_FROM) {
    this.kept = text;
    // a text with a lone surrogate (from the API) would not come back from UTF-8 as it was
    if (text.length < deflateFrom || !wellFormed(text)) return;
    deflateRaw(Buffer.from(text, "utf8"), { level: 1 }, (err, packed) => {
      if (!err && this.kept === text) this.kept = packed;
    });
  }

  get text(): string {
    const kept = this.kept;
    return typeof kept === "string" ? kept : inflateRawSync(kept).toString("utf8");
  }

  /** Whether the text is held deflated now (tests). */
  get deflated(): boolean {
    return typeof this.kept !== "string";
  }
}

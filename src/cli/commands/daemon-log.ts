// Where `moat run` sends the daemon's log lines, escaped. Its own module: `moat run --help` loads
// run.ts, and needs none of the policy code this one imports.
import { printable } from "../../config/index.ts";

/**
 * Where the daemon logs (its stdout, the journal under moat.service): every line escaped as event
 * lines are (printable), whatever it quotes (a peer's host-key type, a client's version line), so
 * no line can hold a newline, CR, ESC or bidi control and pass for another line. The event sinks'
 * lines, escaped where they are made, are written as they are (`verbatim`).
 */
export function daemonLog(
  out: (line: string) => void,
): ((line: string) => void) & { verbatim: (line: string) => void } {
  return Object.assign((line: string) => out(printable(line)), { verbatim: out });
}

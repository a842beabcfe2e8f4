// Where the daemon keeps its state (set store, feeds, compile cache): its own module, so code that
// runs before the policy code loads (the compile cache's set-up) can name it.

/** The daemon's state folder when MOAT_STATE_DIR does not name one. */
export const DEFAULT_STATE_DIR = "/var/lib/moat";

/** $MOAT_STATE_DIR, or /var/lib/moat. */
export function stateDirectory(): string {
  return process.env.MOAT_STATE_DIR ?? DEFAULT_STATE_DIR;
}

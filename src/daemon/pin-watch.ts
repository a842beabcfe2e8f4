// The daemon's pins kept in place. The programs outlive a daemon that hands over (SIGUSR2) or
// dies only through their pins: a pin directory removed by hand while moat runs would leave the
// host open once the daemon is gone. What is missing is pinned again every few seconds and at a
// hand-over, and the daemon says so.

export interface PinWatch {
  /** Pins again what is gone now (a hand-over calls it last). */
  check(): void;
  close(): void;
}

const EVERY_MS = 5000;

export function watchPins(
  restore: () => string[],
  root: string,
  log: (line: string) => void,
): PinWatch {
  let lastFailure = "";
  const check = () => {
    try {
      const restored = restore();
      lastFailure = "";
      if (restored.length > 0)
        log(
          `warning: ${restored.length} pins under ${root} were gone (removed while moat ran): pinned again`,
        );
    } catch (err) {
      const message = (err as Error).message;
      // said once, not every few seconds while it lasts
      if (message !== lastFailure)
        log(`warning: pins under ${root} cannot be pinned again: ${message}`);
      lastFailure = message;
    }
  };
  const timer = setInterval(check, EVERY_MS);
  timer.unref();
  return { check, close: () => clearInterval(timer) };
}

// Waiting in tests for what another process, the kernel or a server does: a probe is asked again
// and again until it finds what the test waits for, and the wait fails after a time limit, naming
// what it waited for.

/** Asks `probe` every `every` ms until it returns something (not undefined); throws after `ms`. */
export async function until<T>(
  what: string,
  probe: () => T | undefined | Promise<T | undefined>,
  ms = 20_000,
  every = 200,
): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, every));
  }
}

/** Asks `holds` every `every` ms until it is true; throws after `ms`. */
export async function untilTrue(
  what: string,
  holds: () => boolean | Promise<boolean>,
  ms: number,
  every = 20,
): Promise<void> {
  await until(what, async () => ((await holds()) ? true : undefined), ms, every);
}

// A big policy's rules, kept as the columns they came from the policy worker in, and made into
// objects while something reads them. The daemon judges most of such a policy in the kernel: its
// thread reads the rules when it installs the policy, explains a connection, diffs a reload, or
// judges in user space (the DNS proxy, the relay, a feed's events). As objects, 100k rules are
// ~70 MB of its heap; as columns, a few. Made, they stay while read, and are let go once no read
// came for IDLE_MS: the next read makes them again (~0.2 s for 100k rules), a new array of new
// objects equal to the first.
import type { ListAgain } from "./handback-lists.ts";

/** How long made rules stay after their last read. */
const IDLE_MS = 10_000;

/** Called when made rules are let go (the daemon: give the memory back). */
let onLetGo: (() => void) | undefined;

/** What is called each time made rules are let go. */
export function afterRulesLetGo(fn: (() => void) | undefined): void {
  onLetGo = fn;
}

/** Rules made from their columns while read. */
class KeptRules {
  private rules: unknown[] | undefined;
  private readAt = 0;
  private timer: NodeJS.Timeout | undefined;
  private readonly again: ListAgain;
  private readonly idleMs: number;

  constructor(again: ListAgain, first: unknown[], idleMs: number) {
    this.again = again;
    this.rules = first;
    this.idleMs = idleMs;
    this.read();
  }

  read(): unknown[] {
    this.readAt = performance.now();
    this.rules ??= this.again.make();
    this.timer ??= this.letGoIn(this.idleMs);
    return this.rules;
  }

  /** Makes the rules a part at a time, `between` awaited after each, unless they are made. */
  async readSoon(between: () => Promise<void>): Promise<void> {
    if (!this.rules) {
      const made = await this.again.makeSoon(between);
      this.rules ??= made;
    }
    this.read();
  }

  private letGoIn(ms: number): NodeJS.Timeout {
    const timer = setTimeout(() => {
      this.timer = undefined;
      const idle = performance.now() - this.readAt;
      if (idle >= this.idleMs) {
        this.rules = undefined;
        onLetGo?.();
      } else this.timer = this.letGoIn(this.idleMs - idle);
    }, ms);
    // a daemon that has nothing else to do may end
    timer.unref();
    return timer;
  }
}

/** The models whose rules are kept as columns. */
const keptOf = new WeakMap<object, KeptRules>();

/**
 * Makes `model.rules` (now `first`) read from `again`'s columns: made while read, let go after
 * `idleMs` without a read. A value assigned to it replaces this with that value.
 */
export function keepRules(
  model: { rules: unknown },
  again: ListAgain,
  first: unknown[],
  idleMs = IDLE_MS,
): void {
  const kept = new KeptRules(again, first, idleMs);
  keptOf.set(model, kept);
  Object.defineProperty(model, "rules", {
    configurable: true,
    // a copy of the model ({ ...model }, a message) carries the rules, as it did the array
    enumerable: true,
    get: () => kept.read(),
    set: (value: unknown) => {
      keptOf.delete(model);
      Object.defineProperty(model, "rules", {
        value,
        writable: true,
        enumerable: true,
        configurable: true,
      });
    },
  });
}

/**
 * Has `model`'s rules made ahead of reads to come (a reload diffs the policy running against the
 * next one), a part a turn of the event loop, where a read would make them at once and hold the
 * loop meanwhile. A model whose rules are not kept as columns has nothing to do.
 */
export async function rulesSoon(
  model: object,
  between: () => Promise<void> = nextTurn,
): Promise<void> {
  await keptOf.get(model)?.readSoon(between);
}

const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

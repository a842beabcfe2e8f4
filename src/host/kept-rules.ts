// A big policy's rules, kept as the columns they came from the policy worker in, and made into
// objects while something reads them. The daemon judges most of such a policy in the kernel: its
// thread reads the rules when it installs the policy, lists them (the API), diffs a change, or
// judges in user space (the DNS proxy, the relay). As objects, 100k rules are ~70 MB of its heap;
// as columns, a few. Made, they stay while read, and are let go once no read came for the idle
// time (IDLE_MS): the next read makes them again (~0.2 s for 100k rules), a new array of new
// objects equal to the first. Rules read again after being let go have twice the idle time the
// next time (up to MAX_IDLE_MS): a policy read every so often stays made, not made at each read.
import type { ListAgain } from "./handback-lists.ts";

/** How long made rules stay after their last read, at first. */
const IDLE_MS = 10_000;
/** The longest they stay once read again and again after being let go. */
const MAX_IDLE_MS = 600_000;
/** The daemon gives memory back (a collection that holds its loop) at most this often for rules. */
const LET_GO_EVERY_MS = 60_000;

/** Called when made rules are let go (the daemon: give the memory back). */
let onLetGo: (() => void) | undefined;
/** When onLetGo was last called, and its call waiting for LET_GO_EVERY_MS to pass. */
let letGoAt = -Infinity;
let letGoLater: NodeJS.Timeout | undefined;

/** What is called when made rules are let go: at most once in LET_GO_EVERY_MS, the rest merged. */
export function afterRulesLetGo(fn: (() => void) | undefined): void {
  onLetGo = fn;
}

function letGo(): void {
  if (letGoLater) return;
  const wait = letGoAt + LET_GO_EVERY_MS - performance.now();
  const call = () => {
    letGoLater = undefined;
    letGoAt = performance.now();
    onLetGo?.();
  };
  if (wait <= 0) return call();
  letGoLater = setTimeout(call, wait);
  letGoLater.unref();
}

/** Rules made from their columns while read. */
class KeptRules {
  private rules: unknown[] | undefined;
  private readAt = 0;
  private timer: NodeJS.Timeout | undefined;
  private readonly again: ListAgain;
  private idleMs: number;

  constructor(again: ListAgain, first: unknown[], idleMs: number) {
    this.again = again;
    this.rules = first;
    this.idleMs = idleMs;
    this.read();
  }

  read(): unknown[] {
    this.readAt = performance.now();
    if (!this.rules) {
      this.rules = this.again.make();
      this.idleMs = Math.min(this.idleMs * 2, MAX_IDLE_MS);
    }
    this.timer ??= this.letGoIn(this.idleMs);
    return this.rules;
  }

  /** Makes the rules a part at a time, `between` awaited after each, unless they are made. */
  async readSoon(between: () => Promise<void>): Promise<void> {
    if (!this.rules) {
      const made = await this.again.makeSoon(between);
      if (!this.rules) {
        this.rules = made;
        this.idleMs = Math.min(this.idleMs * 2, MAX_IDLE_MS);
      }
    }
    this.read();
  }

  /** Lets the rules go now, the policy replaced: its memory goes with what the change freed. */
  drop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.rules = undefined;
  }

  private letGoIn(ms: number): NodeJS.Timeout {
    const timer = setTimeout(() => {
      this.timer = undefined;
      const idle = performance.now() - this.readAt;
      if (idle < this.idleMs) {
        this.timer = this.letGoIn(this.idleMs - idle);
        return;
      }
      this.rules = undefined;
      letGo();
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
      kept.drop();
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
 * Has `model`'s rules made ahead of reads to come (a change diffs the policy running against the
 * next one), a part a turn of the event loop, where a read would make them at once and hold the
 * loop meanwhile. A model whose rules are not kept as columns has nothing to do.
 */
export async function rulesSoon(
  model: object,
  between: () => Promise<void> = nextTurn,
): Promise<void> {
  await keptOf.get(model)?.readSoon(between);
}

/**
 * Lets `model`'s made rules go now (its policy was replaced): what the change freed is given back
 * once the policy worker stops, and they with it. A read after this makes them again.
 */
export function letRulesGo(model: object): void {
  keptOf.get(model)?.drop();
}

const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

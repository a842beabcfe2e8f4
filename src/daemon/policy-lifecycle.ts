// The policy lifecycle: the one path every policy change takes (the file at start, a reload on
// SIGHUP or a file change, a policy or mode from the API, a recompile when what process rules
// name changed on the host): read, check, compile, ready what the policy configures besides the
// datapath, swap atomically, audit. A policy that fails any step is refused with every error and
// the running one stays. Files are read off the event loop, so changes are queued: one at a time,
// in the order asked. A policy applied on trial (`moat policy apply --confirm`) is not saved to the
// file; unless confirmed in time it is reverted through the same path to the policy before it.
// The API never overwrites an edit of the file the daemon has not read: such an apply is refused.
import { readFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { diagnostic, diagnosticLines, PolicyError } from "../config/index.ts";
import type { LocalDecision, Mode, PolicyModel } from "../config/index.ts";
import type { PolicyImage, TableImage } from "../policy/index.ts";
import type { ApplyOptions, ApplyOutcome, TrialView } from "../api/index.ts";
import { appliedLine, auditReload, recordChange, refusedLine } from "../observe/index.ts";
import {
  locateOffThread,
  letRulesGo,
  readPolicyFileTextAsync,
  rulesSoon,
  startAcceptWorker,
  type LoadedPolicy,
  type UniverseReader,
} from "../host/index.ts";
import { compilePolicyText, sha256, writePolicyFile, type AcceptedPolicy } from "./policy-text.ts";
import { KeptText } from "./kept-text.ts";
import type { ClassesOf, NameBinding } from "../dns/index.ts";
import { changeSummary, type PolicyCompileOptions } from "../policy/index.ts";

/** The bindings a new image's slot starts with, by that image's name classes. */
export type BindingsFor = (classes: { classOf: ClassesOf }) => NameBinding[];

/** A policy on trial and what it reverts to. */
interface Trial {
  previous: { text: string; hash: string };
  by: string;
  revertAt: number;
  timer: NodeJS.Timeout;
}

/**
 * The policy running: its model and the text it came from. Its compiled image is not kept once
 * applied (the kernel's maps hold the tables; a recompile starts from the text): for a big policy
 * the image is as large as the text.
 */
export interface RunningPolicy {
  model: PolicyModel;
  text: string;
  hash: string;
}

/** A policy compiled and ready to apply. */
export interface CompiledPolicy extends RunningPolicy, AcceptedPolicy {}

/**
 * What is kept of `policy` while it runs (a new object: `policy` may be held elsewhere); its text
 * deflated (src/daemon/kept-text.ts).
 */
function runningOf({ model, text, hash }: RunningPolicy): RunningPolicy {
  const kept = new KeptText(text);
  return {
    model,
    hash,
    get text() {
      return kept.text;
    },
  };
}

/** What a reload or an apply did: the generation running after it, and why it was refused. */
export type ReloadResult = ApplyOutcome;

/** An apply's options inside the daemon: `admit` may refuse the text against the policy running
 * when its turn comes (changes are serial: a check made before queueing may be stale by then). */
export interface LifecycleApplyOptions extends ApplyOptions {
  /** Why the text may not replace `running`, or null when it may. */
  admit?: (running: RunningPolicy) => string | null;
}

/** Where the compiled policy goes (the Datapath). */
export interface PolicyTarget {
  readonly generation: number;
  /**
   * Swaps `image` in; its slot's name bindings are filled by `bindings` before the flip, and
   * `beforeFlip` runs once the tables are built, with the old policy still live. The daemon's
   * Datapath builds the tables over turns of the event loop (applyInTurns); one install at a time.
   */
  apply(
    image: PolicyImage,
    bindings?: BindingsFor,
    beforeFlip?: () => void,
  ): { generation: number; ms: number } | Promise<{ generation: number; ms: number }>;
}

/** What a policy configures besides the datapath (sinks, audit log path, watched files). */
export interface PolicyPlumbing {
  /** Readies `next`'s; throws (having started nothing) to refuse the policy. */
  prepare(next: PolicyModel, current: PolicyModel): PreparedPlumbing;
}

export interface PreparedPlumbing {
  /** `next` is live: switch to what was readied. */
  commit(): void;
  /** `next` did not go live: close what was readied. */
  abandon(): void;
}

export interface PolicyLifecycleOptions {
  /** The policy file: read on reload, written when the API applies a policy. */
  path: string;
  /** The policy running now (read with readPolicyFile, already applied to `target`). */
  initial: RunningPolicy;
  target: PolicyTarget;
  plumbing: PolicyPlumbing;
  /** Writes a line into the audit log at once. */
  audit: (line: string) => void;
  log: (line: string) => void;
  /** What process rules resolve to on this host; without it they match nothing. */
  universe?: UniverseReader;
  /** Readies an image for the target (redirect targets through moat's relay). */
  route?: (image: PolicyImage) => PolicyImage;
  /** The compiler's options (where moat's DNS proxy listens). */
  compile?: PolicyCompileOptions;
  /** The name bindings of a new image's slot (from moat's DNS proxy). */
  bindings?: BindingsFor;
  /** Called once a policy is live (the DNS proxy follows its image and dns section). */
  applied?: (policy: LoadedPolicy) => void;
  /** moat's local decisions now: every policy compiles with them, before the file's rules. */
  decisions?: () => LocalDecision[];
  /** The mode `moat mode` decided now (a local decision): every policy compiles in it. */
  mode?: () => Mode | undefined;
  /**
   * Makes a big policy's packet tables as soon as the worker compiled them, while the rest of it
   * is handed back (Datapath.buildAhead): its swap takes them.
   */
  tablesAhead?: (tables: TableImage) => void;
}

/**
 * Reads (off the event loop) and compiles the policy file (`offThread`: on the worker thread);
 * rejects with a PolicyError (FILE:LINE:COL) or a compile error.
 */
export async function readPolicyFile(
  path: string,
  universe?: UniverseReader,
  compile?: PolicyCompileOptions,
  offThread = false,
  decisions?: LocalDecision[],
  mode?: Mode,
): Promise<CompiledPolicy> {
  const text = await readFileText(path);
  return compileReadPolicy(text, path, universe, compile, offThread, decisions, mode);
}

/**
 * readPolicyFile's second step, for the text it read. With `offThread`, the text is posted to the
 * worker before this returns: the daemon's start loads the programs while the worker checks it.
 */
export async function compileReadPolicy(
  text: string,
  path: string,
  universe?: UniverseReader,
  compile?: PolicyCompileOptions,
  offThread = false,
  decisions?: LocalDecision[],
  mode?: Mode,
): Promise<CompiledPolicy> {
  const loaded = await compilePolicyText(text, path, universe, compile, offThread, decisions, mode);
  return { ...loaded, text, hash: sha256(text) };
}

/** The policy file's text (off the event loop); rejects with a PolicyError. */
export async function readFileText(path: string): Promise<string> {
  try {
    return await readPolicyFileTextAsync(path);
  } catch (err) {
    const at = { file: path, line: 1, col: 1, path: "(file)" };
    throw new PolicyError([diagnostic(at, `cannot read policy file: ${(err as Error).message}`)]);
  }
}

/** Why an API change must not write the policy file: someone else changed it. */
const FILE_CHANGED =
  "the policy file changed on disk since the daemon read it; reload it, or apply again once it is reloaded (the file is kept as it is, and the running policy stays)";

const errorLines = (err: unknown, path: string): string[] =>
  err instanceof PolicyError
    ? diagnosticLines(err.diagnostics, path)
    : [`${path}: ${(err as Error).message}`];

export class PolicyLifecycle {
  /** Policies applied and refused since start (status and metrics read these). */
  readonly reloads = { ok: 0, refused: 0 };
  private running: RunningPolicy;
  /** The hash of a policy this daemon wrote itself: its file-change event is not a new policy. */
  private selfWritten: string | null = null;
  /**
   * The hash of what the policy file held when the daemon last read it (at start, on a reload,
   * applied or refused) or wrote it: a file that holds something else now has an edit no reload
   * has seen yet, which an apply must not overwrite.
   */
  private fileHash: string;
  /** Without `initial`: kept here, the first policy would outlive every reload. */
  private readonly options: Omit<PolicyLifecycleOptions, "initial">;
  /** The change running now; the next one starts when it settles. */
  private queue: Promise<unknown> = Promise.resolve();
  /** A file reload queued behind the running change, not started yet. */
  private waitingReload: Promise<ReloadResult> | null = null;
  /**
   * When (performance.now(), a monotonic clock: a step of the wall clock must not stall every
   * change queued behind a reload) the next file reload may start.
   */
  private readonly reloadPace = { next: 0 };
  /** The wait of a reload for its pace, ended by stop(). */
  private endPaceWait: (() => void) | null = null;
  /** The policy applied on trial, until confirmed, reverted or replaced. */
  private trial: Trial | null = null;
  /** stop() was called: the daemon is going. */
  private stopping = false;
  /** The warnings last printed: a recompile of the same text prints its own when they differ. */
  private warned = "";

  constructor(options: PolicyLifecycleOptions) {
    const { initial, ...rest } = options;
    this.options = rest;
    this.running = runningOf(initial);
    this.fileHash = initial.hash;
  }

  /** The policy running now. */
  get active(): RunningPolicy {
    return this.running;
  }

  /** The policy on trial, if one is. */
  get onTrial(): TrialView | undefined {
    const t = this.trial;
    if (!t) return undefined;
    return {
      revertAt: new Date(t.revertAt).toISOString(),
      by: t.by,
      previousHash: t.previous.hash,
    };
  }

  /** Stops the trial's timer (the daemon stops; its file still holds the policy before it). */
  close(): void {
    if (this.trial) clearTimeout(this.trial.timer);
    this.trial = null;
  }

  /** The daemon stops: the trial's timer too, and a change still being applied is dropped. */
  stop(): void {
    this.stopping = true;
    this.close();
    this.endPaceWait?.();
  }

  /** The log line of an applied policy. */
  describe(p: RunningPolicy, generation: number, ms?: number): string {
    return (
      `policy ${this.options.path} applied: generation ${generation}, ${p.model.rules.length} rules, mode ${p.model.mode}` +
      (ms === undefined ? "" : ` (${ms.toFixed(1)} ms)`)
    );
  }

  /**
   * Logs `p`'s warnings as `moat check` prints them: always when `always` (the start, a reload, a
   * policy from the API: someone changed the policy and looks at what it says), else only when
   * they differ from the last printed (a recompile of the same text for a set change, a feed's
   * new list, processes that came: no lines at every fetch, only when a warning changed).
   */
  logWarnings(p: { warnings: readonly string[] }, always: boolean): void {
    const text = p.warnings.join("\n");
    if (!always && text === this.warned) return;
    this.warned = text;
    for (const line of p.warnings) this.options.log(line);
  }

  /**
   * Re-reads the policy file; an invalid one is refused and the running policy stays. Applied
   * and refused reloads are audited with their cause (a signal, a file change).
   */
  reload(reason: string): Promise<ReloadResult> {
    // a reload still waiting its turn reads the file when it starts: later asks join it (a burst
    // of signals or file events is one reload, not a queue that keeps the event loop busy)
    if (this.waitingReload) return this.waitingReload;
    const run = this.serial(async () => {
      // reloads back to back would hold the event loop (DNS answers, the API): the next one
      // starts no sooner than the last one took after it ended, so reloading takes at most half
      await this.pace();
      this.waitingReload = null;
      const before = this.options.target.generation;
      if (this.stopping)
        return { ok: false, generation: before, errors: ["the daemon is stopping"] };
      const started = performance.now();
      const outcome = await this.reloadFile(reason);
      this.reloadPace.next = 2 * performance.now() - started;
      const { mode } = this.running.model;
      return auditReload({ note: this.options.audit }, reason, before, outcome, {
        mode,
        hash: this.running.hash,
      });
    });
    this.waitingReload = run;
    return run;
  }

  /** Resolves when the next reload may start, or at once when the daemon stops. */
  private pace(): Promise<void> {
    const wait = this.reloadPace.next - performance.now();
    if (wait <= 0 || this.stopping) return Promise.resolve();
    return new Promise((resolve) => {
      const end = () => {
        clearTimeout(timer);
        this.endPaceWait = null;
        resolve();
      };
      // a stopping daemon is not kept alive by it
      const timer = setTimeout(end, wait).unref();
      this.endPaceWait = end;
    });
  }

  /** Runs `change` once every change asked before it has settled. */
  private serial<T>(change: () => Promise<T>): Promise<T> {
    const run = this.queue.then(change, change);
    this.queue = run.catch(() => {});
    return run;
  }

  private async reloadFile(reason: string): Promise<ReloadResult> {
    const { path } = this.options;
    // the policy worker (stopped when idle) loads its modules while the file is read
    startAcceptWorker();
    let text: string;
    try {
      text = await readFileText(path);
    } catch (err) {
      return this.refuse(reason, errorLines(err, path));
    }
    const hash = sha256(text);
    this.fileHash = hash;
    // the API's own write is skipped once, on the reload that follows it: a later one reads an
    // edit, which may hold that same text again
    const own = this.selfWritten;
    this.selfWritten = null;
    if (reason === "file changed" && own === hash)
      return { ok: true, generation: this.options.target.generation, errors: [] };
    let next: CompiledPolicy;
    try {
      next = { ...(await this.compile(text)), text, hash };
    } catch (err) {
      return this.refuse(reason, errorLines(err, path));
    }
    const result = await this.install(next, reason, { announce: true });
    if (result.ok) this.close(); // the file's policy runs now: a trial before it is over
    return result;
  }

  /**
   * Compiles the running text again (what its process rules name changed on the host, or what
   * its sets hold). Rejects when that could not be applied: the running policy stays, and a
   * caller that asked for it (a set change) must not say its change is in force.
   */
  recompile(reason: string): Promise<void> {
    return this.serial(async () => {
      const { text, hash } = this.running;
      let why: string;
      try {
        const next = { ...(await this.compile(text)), text, hash };
        const result = await this.install(next, reason);
        if (result.ok) return;
        why = result.errors.join("; "); // install logged the refusal
      } catch (err) {
        why = (err as Error).message;
        this.options.log(`${reason}, the policy could not be compiled again: ${why}`);
      }
      throw new Error(`the policy could not be compiled again: ${why}`);
    });
  }

  /**
   * Applies `text` as the policy and saves it to the policy file, on behalf of `who`. With
   * `confirmMs` it is on trial: not saved, and reverted to the policy before it (the one before
   * the first trial, when trials follow each other) unless confirm() comes within `confirmMs`.
   */
  apply(text: string, who: string, options: LifecycleApplyOptions = {}): Promise<ReloadResult> {
    return this.serial(() => {
      const refusal = options.admit?.(this.running) ?? null;
      if (refusal === null) return this.applyText(text, who, "policy", options.confirmMs);
      const result = this.refuse(`policy from ${who}`, [`${this.options.path}:1:1: ${refusal}`]);
      this.options.audit(refusedLine("policy", who, sha256(text), result.errors.length));
      return Promise.resolve(result);
    });
  }

  /** Keeps the policy on trial: saves it to the policy file. */
  confirm(who: string): Promise<ReloadResult> {
    return this.serial(async (): Promise<ReloadResult> => {
      const generation = this.options.target.generation;
      if (!this.trial)
        return {
          ok: false,
          generation,
          errors: ["no policy is on trial: it was reverted, confirmed or replaced already"],
        };
      const changed = await this.fileChanged();
      // the trial goes on (and is reverted unless confirmed after the file's reload)
      if (changed) return this.refuse(`confirm from ${who}`, [changed]);
      this.close();
      this.save(this.running.text, this.running.hash);
      const { audit, log } = this.options;
      const line = `POLICY CONFIRMED policy by ${who}: generation ${generation}, mode ${this.running.model.mode}, sha256 ${this.running.hash}`;
      recordChange({ note: audit }, log, line);
      return { ok: true, generation, errors: [] };
    });
  }

  /**
   * Why the policy file must not be written now (as an error line), or null: it holds something
   * other than what the daemon last read or wrote there (an edit no reload has seen). A file that
   * is gone has nothing to lose.
   */
  private async fileChanged(): Promise<string | null> {
    const { path } = this.options;
    let text: string;
    try {
      text = await readFile(path, "utf8");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
      return `${path}:1:1: cannot read the policy file to see whether it changed: ${(err as Error).message}`;
    }
    return sha256(text) === this.fileHash ? null : `${path}:1:1: ${FILE_CHANGED}`;
  }

  /** The trial `trial` ran out: the policy before it goes back in, by the one install path. */
  private async revert(trial: Trial): Promise<void> {
    if (this.trial !== trial) return; // confirmed or replaced meanwhile
    try {
      await this.revertTo(trial);
    } finally {
      // the trial's policy is shown on trial until the one before it is in (compiling that takes
      // a while on the worker thread); changes are serial, so nothing confirms it meanwhile
      this.trial = null;
    }
  }

  private async revertTo(trial: Trial): Promise<void> {
    const { text, hash } = trial.previous;
    const who = `moat (not confirmed in time; applied by ${trial.by})`;
    const { audit, log } = this.options;
    let next: CompiledPolicy;
    try {
      next = { ...(await this.compileToDiff(text)), text, hash };
    } catch (err) {
      log(
        `warning: the policy before the trial could not be compiled again: ${(err as Error).message}`,
      );
      audit(refusedLine("revert", who, hash, 1));
      return;
    }
    const changes = changeSummary(this.running.model, next.model);
    const result = await this.install(next, `revert by ${who}`, { announce: true });
    if (!result.ok) {
      audit(refusedLine("revert", who, hash, result.errors.length));
      return;
    }
    recordChange(
      { note: audit },
      log,
      appliedLine("revert", who, result.generation, next.model.mode, hash, changes),
    );
  }

  private save(text: string, hash: string): void {
    const { path, log } = this.options;
    try {
      // changed while the policy went in: the edit stays, and its reload (the file watcher's)
      // applies it
      if (sha256(readFileSync(path, "utf8")) !== this.fileHash) {
        log(`warning: applied, but not saved: ${path} changed on disk meanwhile`);
        return;
      }
    } catch {
      // gone or unreadable: the write says what is wrong
    }
    try {
      this.selfWritten = hash;
      writePolicyFile(path, text);
      this.fileHash = hash;
    } catch (err) {
      this.selfWritten = null;
      log(`warning: applied, but could not save ${path}: ${(err as Error).message}`);
    }
  }

  private async applyText(
    text: string,
    who: string,
    what: string,
    confirmMs?: number,
  ): Promise<ReloadResult> {
    const { path, audit, log } = this.options;
    const hash = sha256(text);
    const previous = this.trial?.previous ?? { text: this.running.text, hash: this.running.hash };
    let next: CompiledPolicy;
    try {
      next = { ...(await this.compileToDiff(text)), text, hash };
    } catch (err) {
      const result = this.refuse(`${what} from ${who}`, errorLines(err, path));
      audit(refusedLine(what, who, hash, result.errors.length));
      return result;
    }
    // saved once applied: not over an edit of the file no reload has read (checked once compiled,
    // the long part, during which the operator may have saved the file)
    const changed = confirmMs === undefined ? await this.fileChanged() : null;
    if (changed) {
      const result = this.refuse(`${what} from ${who}`, [changed]);
      audit(refusedLine(what, who, hash, result.errors.length));
      return result;
    }
    const changes = changeSummary(this.running.model, next.model);
    const result = await this.install(next, `${what} from ${who}`, { announce: true });
    if (!result.ok) {
      audit(refusedLine(what, who, hash, result.errors.length));
      return result;
    }
    this.close(); // a trial before this change is over: this one replaces it
    if (confirmMs === undefined) {
      this.save(text, hash);
      recordChange(
        { note: audit },
        log,
        appliedLine(what, who, result.generation, next.model.mode, hash, changes),
      );
      return result;
    }
    const revertAt = Date.now() + confirmMs;
    const trial: Trial = {
      previous,
      by: who,
      revertAt,
      timer: setTimeout(() => void this.serial(() => this.revert(trial)), confirmMs),
    };
    trial.timer.unref();
    this.trial = trial;
    const seconds = Math.round(confirmMs / 1000);
    const line = appliedLine(
      `${what} on trial for ${seconds} s`,
      who,
      result.generation,
      next.model.mode,
      hash,
      changes,
    );
    recordChange({ note: audit }, log, line);
    return { ...result, revertAt: new Date(revertAt).toISOString() };
  }

  /**
   * The mode decision (`options.mode`) is now `mode` (undefined: none, the file's mode): the
   * running text is compiled again in it and installed by the one install path; the policy file
   * is not rewritten, and a policy on trial stays on trial.
   */
  setMode(mode: Mode | undefined, who: string): Promise<ReloadResult> {
    const what = `mode ${mode ?? "of the policy file"}`;
    return this.serial(async () => {
      const { text, hash } = this.running;
      let next: CompiledPolicy;
      try {
        next = { ...(await this.compileToDiff(text)), text, hash };
      } catch (err) {
        const result = this.refuse(`${what} from ${who}`, errorLines(err, this.options.path));
        this.options.audit(refusedLine(what, who, hash, result.errors.length));
        return result;
      }
      const changes = changeSummary(this.running.model, next.model);
      const result = await this.install(next, `${what} from ${who}`);
      if (!result.ok) {
        this.options.audit(refusedLine(what, who, hash, result.errors.length));
        return result;
      }
      recordChange(
        { note: this.options.audit },
        this.options.log,
        appliedLine(what, who, result.generation, next.model.mode, hash, changes),
      );
      return result;
    });
  }

  /**
   * compile(), for a change whose audit line names what it changes (changeSummary): the running
   * policy's rules are read for that, and a big policy's are made meanwhile
   * (src/host/kept-rules.ts), a part a turn, where the diff would make them at once.
   */
  private compileToDiff(text: string): Promise<AcceptedPolicy> {
    rulesSoon(this.running.model).catch(() => {});
    return this.compile(text);
  }

  private compile(text: string): Promise<AcceptedPolicy> {
    const { path, universe, compile, decisions, mode, tablesAhead } = this.options;
    return compilePolicyText(
      text,
      path,
      universe,
      compile,
      true,
      decisions?.(),
      mode?.(),
      tablesAhead,
    );
  }

  /**
   * The local decisions changed (`why`, e.g. "decision d1 added by unix uid 0"): the running
   * text is compiled again with them and installed by the one install path; refused (with the
   * errors) when the policy with them cannot be compiled, and the running one stays.
   * `beforeSwap` runs once the new policy's tables are built, just before they go in (the
   * connections an expired decision let through are cut while their resets still pass).
   */
  decisionsChanged(why: string, beforeSwap?: () => void): Promise<ReloadResult> {
    return this.serial(async () => {
      const { text, hash } = this.running;
      let next: CompiledPolicy;
      try {
        next = { ...(await this.compile(text)), text, hash };
      } catch (err) {
        return this.refuse(why, errorLines(err, this.options.path));
      }
      const result = await this.install(next, why, { beforeSwap });
      if (result.ok)
        recordChange(
          { note: this.options.audit },
          this.options.log,
          `DECISIONS ${why}: generation ${result.generation}`,
        );
      return result;
    });
  }

  private refuse(reason: string, errors: string[]): ReloadResult {
    const { target, log } = this.options;
    this.reloads.refused++;
    log(`reload refused (${reason}), keeping generation ${target.generation}:`);
    for (const e of errors) log(e);
    return { ok: false, generation: target.generation, errors };
  }

  /**
   * The one path every policy change takes: ready the plumbing, swap atomically, commit.
   * `beforeSwap` runs once the new tables are built, just before they go live.
   */
  private async install(
    next: CompiledPolicy,
    reason: string,
    { beforeSwap, announce = false }: { beforeSwap?: () => void; announce?: boolean } = {},
  ): Promise<ReloadResult> {
    const { target, plumbing, route, log } = this.options;
    let prepared: PreparedPlumbing;
    try {
      prepared = plumbing.prepare(next.model, this.running.model);
    } catch (err) {
      return this.refuse(reason, errorLines(err, this.options.path));
    }
    let applied: { generation: number; ms: number };
    const before = target.generation;
    try {
      const image = route ? route(next.image) : next.image;
      applied = await target.apply(image, this.options.bindings, beforeSwap);
    } catch (err) {
      prepared.abandon();
      // its datapath is gone: refused, not an error thrown into the stopping daemon
      if (this.stopping) return { ok: false, generation: before, errors: [(err as Error).message] };
      throw err;
    }
    // the policy before is let go; a big one's made rules with it now, not when next unread
    if (this.running.model !== next.model) letRulesGo(this.running.model);
    this.running = runningOf(next);
    this.reloads.ok++;
    prepared.commit();
    this.options.applied?.(next);
    log(this.describe(next, applied.generation, applied.ms));
    this.logWarnings(next, announce);
    // where its rules are in the file, worked out on the worker now the swap is done
    locateOffThread(next.model);
    return { ok: true, generation: applied.generation, errors: [] };
  }
}

// Follows this host's policy key in a JetStream key-value bucket: each new revision goes through
// the daemon's one install path (`apply`, what `moat policy apply` uses); the outcome, with every
// error as KEY:LINE:COL, goes to the host's status key. A revision is recorded as handled once its
// apply is over, applied or refused, so it is never taken up again; one whose apply failed (the
// daemon's error, or the daemon stopping meanwhile) is taken up again. The record survives
// restarts (applied-revision.ts). A report the server did not take is written again, backing off,
// until it is (only the latest: a newer revision's report replaces it). A bucket whose stream was
// created at another time than the one recorded (or, without a recorded time, a fresh watch whose
// first revision is older than the one handled) was made again (its revisions start at 1 again):
// the follower says so and takes up the new bucket's revisions. An applied revision is on trial
// until its report is written: one that cuts the host off from the servers (its report not
// written within `trialMs`) is reverted to the policy that would be in force without it, so the
// host can be reached again and reports it refused.
import { setTimeout as sleep } from "node:timers/promises";
import type { KV, KvEntry, NatsConnection, QueuedIterator } from "nats";
import { connectFleet, type FleetConnectOptions } from "./connection.ts";
import { policyKey, statusKey, type FleetStatus } from "./names.ts";
import { readRevisionState, writeRevisionState, type RevisionState } from "./applied-revision.ts";
import { verifyPolicy } from "./signature.ts";

export interface ApplyOutcome {
  ok: boolean;
  generation: number;
  errors: string[];
}

export interface PolicyFollowerOptions {
  connection: FleetConnectOptions;
  host: string;
  bucket: string;
  stateFile: string;
  /**
   * The daemon's install path; `who` names the bucket, key and revision in the audit log.
   * `admit` is asked in the install's own turn, against the policy running then: a reload that
   * came first may have changed what this host follows and whose signatures it takes.
   */
  apply: (text: string, who: string, admit: () => string | null) => Promise<ApplyOutcome>;
  /**
   * What the running policy says now: null when it no longer follows this bucket and key, else
   * the public nkeys a revision must be signed by (signature.ts; none: revisions apply unsigned,
   * as the bucket's permissions let them be written).
   */
  followed: () => { signers?: readonly string[] } | null;
  /** The time of the running policy's own signature (0: none), a floor for the next one. */
  signedFloor?: number;
  /** The name errors carry for the policy text (the daemon's policy file): shown as the key. */
  fileName: string;
  log: (line: string) => void;
  /** Delay before connecting again after a failure (default 2 s). */
  retryMs?: number;
  /**
   * The policy text running now: what a revision on trial reverts to. Without it, revisions are
   * not on trial.
   */
  runningText?: () => string;
  /**
   * What a revision applied now would be reverted to, asked in the apply's own turn (default: the
   * running text): the policy that would be in force without the revision. A local trial it ends
   * was never confirmed, so that is the confirmed policy the trial would have gone back to.
   */
  revertText?: () => string | undefined;
  /** How long an applied revision's report may take before the policy before it goes back in. */
  trialMs?: number;
}

/** An applied revision whose report is not written in 60 s is reverted (docs/fleet.md). */
export const TRIAL_MS = 60_000;

/** A report the server did not take is written again after 100 ms, doubling up to 5 s. */
const REPORT_RETRY_FIRST_MS = 100;
const REPORT_RETRY_MAX_MS = 5000;

export class PolicyFollower {
  private readonly o: PolicyFollowerOptions;
  private readonly key: string;
  private state: RevisionState;
  private readonly closing = new AbortController();
  private nc: NatsConnection | undefined;
  private watch: QueuedIterator<KvEntry> | undefined;
  /** The bucket on the connection now (reports are written there), if connected. */
  private kv: KV | undefined;
  /** The latest report not yet written, if any. */
  private unreported: FleetStatus | null = null;
  /** The revision whose report failed last (its failure is logged once). */
  private failedReport = 0;
  /** The reports' retry loop, while one runs. */
  private reporting: Promise<void> | null = null;
  private readonly running: Promise<void>;
  /** The revision an earlier daemon ended during (its apply began, never ended); 0: none. */
  private diedDuring: number;

  constructor(o: PolicyFollowerOptions) {
    this.o = o;
    this.key = policyKey(o.host);
    const state = readRevisionState(o.stateFile, o.bucket, this.key);
    this.state = { ...state, signed: Math.max(state.signed, o.signedFloor ?? 0) };
    this.diedDuring = (state.started ?? 0) > state.handled ? state.started! : 0;
    this.running = this.run();
  }

  /** The revisions handled and applied (status, tests). */
  get revisions(): Readonly<RevisionState> {
    return this.state;
  }

  private async run(): Promise<void> {
    const { log, bucket } = this.o;
    const retryMs = this.o.retryMs ?? 2000;
    let reported = "";
    while (!this.closing.signal.aborted) {
      try {
        const nc = await connectFleet(this.o.connection);
        this.nc = nc;
        if (this.closing.signal.aborted) break;
        const kv = await nc.jetstream().views.kv(bucket, { bindOnly: true });
        this.kv = kv;
        await this.checkStream(kv);
        const watch = await kv.watch({ key: this.key });
        this.watch = watch;
        if (this.closing.signal.aborted) watch.stop(); // close() came while the watch was made
        log(`fleet: following ${bucket}/${this.key} (applied revision ${this.state.applied})`);
        reported = "";
        let first = true;
        for await (const entry of watch) {
          if (this.closing.signal.aborted) break;
          if (first && entry.revision < this.state.handled)
            this.recreated(
              `revision ${entry.revision} is older than revision ${this.state.handled} handled before`,
            );
          first = false;
          await this.take(entry);
        }
      } catch (err) {
        const message = (err as Error).message;
        // a server that stays away is reported once, not every retry
        if (message !== reported) log(`fleet: ${bucket}/${this.key}: ${message}; retrying`);
        reported = message;
      }
      this.kv = undefined;
      await this.nc?.close().catch(() => {});
      this.nc = undefined;
      if (this.closing.signal.aborted) break;
      // the wait lets go of the close signal when it ends: a server away for a day would
      // otherwise leave a listener on it per retry
      await sleep(retryMs, undefined, { signal: this.closing.signal }).catch(() => {});
    }
  }

  private async take(entry: KvEntry): Promise<void> {
    const { log, bucket } = this.o;
    if (entry.revision <= this.state.handled) return; // seen before this start, or replayed
    if (entry.operation !== "PUT") {
      log(
        `fleet: ${bucket}/${this.key} deleted at revision ${entry.revision}; the running policy stays`,
      );
      return;
    }
    const who = `fleet ${bucket}/${this.key} revision ${entry.revision}`;
    const text = new TextDecoder().decode(entry.value);
    let before: { text: string | undefined; applied: number } = { text: undefined, applied: 0 };
    let signedAt: number | null = null;
    const admit = (): string | null => {
      const now = this.o.followed();
      if (!now) return `the running policy no longer follows ${bucket}/${this.key}`;
      if (!now.signers) return null;
      const v = verifyPolicy(text, { bucket, key: this.key }, now.signers, this.state.signed);
      if (!v.ok) return v.error;
      signedAt = v.time;
      return null;
    };
    // a daemon that ended during this revision's apply: refused (through the one apply path, so
    // audited and reported as any refusal), so a policy that ends the daemon does not do so at
    // every start
    const died = entry.revision === this.diedDuring;
    if (died) log(`fleet: ${who}: the daemon ended during its apply before; refused`);
    const decide = (): string | null => {
      // in the apply's own turn: what runs then is what this revision replaces
      const revertText = this.o.runningText && (this.o.revertText ?? this.o.runningText);
      before = { text: revertText?.(), applied: this.state.applied };
      return died
        ? "the daemon ended during this revision's apply before; not tried again"
        : admit();
    };
    this.record({ started: entry.revision });
    let outcome: ApplyOutcome;
    try {
      outcome = await this.o.apply(text, who, decide);
    } catch (err) {
      // the daemon's error, not the policy's: unrecorded, the watch made again (run()) gives it
      // again
      throw new Error(`revision ${entry.revision} not applied: ${(err as Error).message}`);
    }
    if (!outcome.ok && this.closing.signal.aborted) {
      // refused as the daemon stops (its datapath gone), not for the policy: the next start
      // takes it up
      this.record({ started: 0 });
      log(`fleet: ${who} not applied while stopping; taken up again at the next start`);
      return;
    }
    this.record({
      handled: entry.revision,
      started: 0,
      ...(outcome.ok ? { applied: entry.revision, signed: signedAt ?? this.state.signed } : {}),
    });
    const status = this.status(entry.revision, outcome);
    if (!outcome.ok || before.text === undefined) return this.report(status);
    if (await this.reportWithin(status, this.o.trialMs ?? TRIAL_MS)) return;
    await this.revert(entry.revision, text, { text: before.text, applied: before.applied });
  }

  /** The report on `revision` after `outcome`, its errors naming the key for the policy file. */
  private status(revision: number, outcome: ApplyOutcome): FleetStatus {
    const prefix = `${this.o.fileName}:`;
    return {
      host: this.o.host,
      revision,
      result: outcome.ok ? "applied" : "refused",
      applied_revision: this.state.applied,
      generation: outcome.generation,
      errors: outcome.errors.map((e) =>
        e.startsWith(prefix) ? `${this.key}:${e.slice(prefix.length)}` : e,
      ),
      time: new Date().toISOString(),
    };
  }

  /**
   * Whether `status` was written within `ms` (or the follower stops meanwhile: a stopping daemon
   * keeps the policy it applied).
   */
  private async reportWithin(status: FleetStatus, ms: number): Promise<boolean> {
    const end = Date.now() + ms;
    const { signal } = this.closing;
    await this.report(status);
    while (this.unreported === status && !signal.aborted && Date.now() < end)
      await sleep(100, undefined, { signal }).catch(() => {});
    return this.unreported !== status || signal.aborted;
  }

  /**
   * Revision `revision` (running as `text`) left the host unable to report: the policy before it
   * goes back in through the same apply path, unless another change came meanwhile. The revision
   * stays handled; it is reported refused once the host reaches the servers again.
   */
  private async revert(
    revision: number,
    text: string,
    before: { text: string; applied: number },
  ): Promise<void> {
    const { bucket, log } = this.o;
    const seconds = (this.o.trialMs ?? TRIAL_MS) / 1000;
    const why = `its report could not be written in ${seconds} s (does it let the host reach the fleet's servers?)`;
    const who = `fleet ${bucket}/${this.key} revision ${revision} reverted: ${why}`;
    log(
      `fleet: ${bucket}/${this.key} revision ${revision}: ${why}; the policy before it goes back in`,
    );
    const changed = () =>
      this.o.runningText?.() === text ? null : "the running policy changed meanwhile; not reverted";
    // the revision's own report ("applied") is no longer true once the revert runs: held back, so
    // a retry cannot write it while the policy before goes back in (the host reachable again)
    const held = this.unreported;
    this.unreported = null;
    let outcome: ApplyOutcome;
    try {
      outcome = await this.o.apply(before.text, who, changed);
    } catch (err) {
      outcome = { ok: false, generation: 0, errors: [(err as Error).message] };
    }
    if (!outcome.ok) {
      log(`fleet: revision ${revision} not reverted: ${outcome.errors.join("; ")}`);
      if (held && !this.unreported) await this.report(held);
      return;
    }
    this.record({ applied: before.applied });
    await this.report({
      ...this.status(revision, { ok: false, generation: outcome.generation, errors: [] }),
      errors: [`${this.key}:1:1: reverted to the policy before it: ${why}`],
    });
  }

  /** Writes `status` to the status key, or leaves it to the retry loop. */
  private async report(status: FleetStatus): Promise<void> {
    this.unreported = status;
    if (this.reporting) return; // the loop writes the latest report next
    if (await this.writeReport()) return;
    this.reporting = this.retryReports().finally(() => {
      this.reporting = null;
      // a report made after the loop's last write, before it ended, is written now: it found
      // the loop still running and left the write to it
      const latest = this.unreported;
      if (latest && !this.closing.signal.aborted) void this.report(latest);
    });
  }

  /** One try at writing the latest unwritten report; whether none is left unwritten. */
  private async writeReport(): Promise<boolean> {
    const status = this.unreported;
    if (!status) return true;
    const key = statusKey(this.o.host);
    try {
      if (!this.kv) throw new Error("not connected");
      await this.kv.put(key, JSON.stringify(status));
    } catch (err) {
      if (this.failedReport !== status.revision)
        this.o.log(
          `fleet: could not report revision ${status.revision} to ${key}: ${(err as Error).message}; trying again`,
        );
      this.failedReport = status.revision;
      return false;
    }
    if (this.failedReport === status.revision)
      this.o.log(`fleet: reported revision ${status.revision} to ${key}`);
    if (this.unreported === status) this.unreported = null;
    return this.unreported === null;
  }

  private async retryReports(): Promise<void> {
    const { signal } = this.closing;
    let waitMs = REPORT_RETRY_FIRST_MS;
    while (!signal.aborted) {
      await sleep(waitMs, undefined, { signal }).catch(() => {});
      if (signal.aborted || (await this.writeReport())) return;
      waitMs = Math.min(waitMs * 2, REPORT_RETRY_MAX_MS);
    }
  }

  /**
   * A bucket whose stream was created at another time than the one recorded is a new bucket of
   * that name (its revisions start at 1 again, and may reach the number handled before it was
   * deleted): it is taken up from the start. The time is recorded for the next start.
   */
  private async checkStream(kv: KV): Promise<void> {
    const created = (await kv.status()).streamInfo.created;
    const recorded = this.state.stream;
    if (recorded !== undefined && recorded !== created && this.state.handled > 0)
      this.recreated(`its stream was created at ${created}, not at ${recorded} as before`);
    if (created !== this.state.stream) this.record({ stream: created });
  }

  /**
   * This bucket is a new one of that name (`why`): its revisions are taken up from the start; the
   * signature floor stays (an older signed policy is still refused).
   */
  private recreated(why: string): void {
    this.o.log(
      `fleet: ${this.o.bucket}/${this.key}: ${why}: the bucket was recreated; taking up its revisions`,
    );
    this.diedDuring = 0;
    this.record({ handled: 0, applied: 0, started: 0 });
  }

  private record(change: Partial<RevisionState>): void {
    this.state = { ...this.state, ...change };
    writeRevisionState(this.o.stateFile, this.state);
  }

  /** Ends the watch; a revision being taken up is finished and reported first. */
  async close(): Promise<void> {
    this.closing.abort();
    this.watch?.stop();
    await this.running;
    await this.reporting;
    const lost = this.unreported;
    if (lost)
      this.o.log(
        `fleet: the report on revision ${lost.revision} was not written to ${statusKey(this.o.host)} before the follower stopped`,
      );
  }
}

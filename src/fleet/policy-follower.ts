// Follows this host's policy key in a JetStream key-value bucket: each new revision goes through
// the daemon's one install path (`apply`, what `moat policy apply` uses); the outcome, with every
// error as KEY:LINE:COL, goes to the host's status key. A revision is recorded as handled once its
// apply is over, applied or refused, so it is never taken up again; one whose apply failed (the
// daemon's error, or the daemon stopping meanwhile) is taken up again. The record survives
// restarts (applied-revision.ts).
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
}

export class PolicyFollower {
  private readonly o: PolicyFollowerOptions;
  private readonly key: string;
  private state: RevisionState;
  private readonly closing = new AbortController();
  private nc: NatsConnection | undefined;
  private watch: QueuedIterator<KvEntry> | undefined;
  private readonly running: Promise<void>;
  /** The revision an earlier daemon ended during (its apply began, never ended); 0: none. */
  private readonly diedDuring: number;

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
        const watch = await kv.watch({ key: this.key });
        this.watch = watch;
        if (this.closing.signal.aborted) watch.stop(); // close() came while the watch was made
        log(`fleet: following ${bucket}/${this.key} (applied revision ${this.state.applied})`);
        reported = "";
        for await (const entry of watch) {
          if (this.closing.signal.aborted) break;
          await this.take(kv, entry);
        }
      } catch (err) {
        const message = (err as Error).message;
        // a server that stays away is reported once, not every retry
        if (message !== reported) log(`fleet: ${bucket}/${this.key}: ${message}; retrying`);
        reported = message;
      }
      await this.nc?.close().catch(() => {});
      this.nc = undefined;
      if (this.closing.signal.aborted) break;
      // the wait lets go of the close signal when it ends: a server away for a day would
      // otherwise leave a listener on it per retry
      await sleep(retryMs, undefined, { signal: this.closing.signal }).catch(() => {});
    }
  }

  private async take(kv: KV, entry: KvEntry): Promise<void> {
    const { log, bucket, host } = this.o;
    if (entry.revision <= this.state.handled) return; // seen before this start, or replayed
    if (entry.operation !== "PUT") {
      log(
        `fleet: ${bucket}/${this.key} deleted at revision ${entry.revision}; the running policy stays`,
      );
      return;
    }
    const who = `fleet ${bucket}/${this.key} revision ${entry.revision}`;
    const text = new TextDecoder().decode(entry.value);
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
    const decide = died
      ? () => "the daemon ended during this revision's apply before; not tried again"
      : admit;
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
    const prefix = `${this.o.fileName}:`;
    const status: FleetStatus = {
      host,
      revision: entry.revision,
      result: outcome.ok ? "applied" : "refused",
      applied_revision: this.state.applied,
      generation: outcome.generation,
      errors: outcome.errors.map((e) =>
        e.startsWith(prefix) ? `${this.key}:${e.slice(prefix.length)}` : e,
      ),
      time: new Date().toISOString(),
    };
    try {
      await kv.put(statusKey(host), JSON.stringify(status));
    } catch (err) {
      log(
        `fleet: could not report revision ${entry.revision} to ${statusKey(host)}: ${(err as Error).message}`,
      );
    }
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
  }
}

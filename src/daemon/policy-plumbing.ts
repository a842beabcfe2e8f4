// What a policy configures besides the datapath, kept in step with the running policy: the
// sinks of its `otel` and `event_publisher` sections (in the pipeline beside the daemon's own),
// the audit log's path, and the files a reload watches (the policy and its set files). A new
// policy's are readied before the swap (a bad key file or audit path refuses the policy) and
// switched to after it.
import type { PolicyModel } from "../config/index.ts";
import {
  type AuditSink,
  type EventPipeline,
  type PolicySinks,
  sinksFromPolicy,
  type SnapshotSource,
} from "../observe/index.ts";
import type { PolicyPlumbing, PreparedPlumbing } from "./policy-lifecycle.ts";

export interface PlumbingOptions {
  policyPath: string;
  pipeline: Pick<EventPipeline, "add" | "remove">;
  audit: Pick<AuditSink, "setPath">;
  snapshot: SnapshotSource;
  /** The watched files (policy and set files). */
  watch: { set(paths: string[]): void };
  /** Applies the policy's attach section (throws, changing nothing, when it cannot). */
  attach?: (model: PolicyModel) => void;
  log: (line: string) => void;
}

export interface Plumbing extends PolicyPlumbing {
  /** Closes the running policy's sinks (the pipeline has closed them already). */
  close(): Promise<void>;
}

/** Parts of the policy that are read once, at start: a change to them waits for a restart. */
const AT_START: [string, (m: PolicyModel) => unknown][] = [
  ["api", (m) => m.api?.value],
  ["logging.history", (m) => m.logging.history?.value],
];

/**
 * Plumbs `initial` at once (its audit path is set before the datapath starts, so an unsafe one
 * stops the start early) and returns what plumbs the next ones.
 */
export function policyPlumbing(initial: PolicyModel, options: PlumbingOptions): Plumbing {
  const { pipeline, audit, snapshot, watch, log } = options;
  let running: PolicySinks = sinksFromPolicy(initial, snapshot);
  for (const sink of running.sinks) pipeline.add(sink);
  watch.set([options.policyPath, ...initial.setFiles]);

  return {
    prepare(next, current): PreparedPlumbing {
      // an unchanged otel section shares the running export: cumulative sums keep counting
      const sinks = sinksFromPolicy(next, snapshot, running);
      try {
        audit.setPath(next.logging.audit?.value.path ?? null);
        options.attach?.(next);
      } catch (err) {
        void sinks.close();
        throw err;
      }
      // listeners and the store are opened once; say so rather than half-apply them
      for (const [name, read] of AT_START)
        if (JSON.stringify(read(current)) !== JSON.stringify(read(next)))
          log(`note: the change to '${name}' takes effect when moat restarts`);
      return {
        commit() {
          watch.set([options.policyPath, ...next.setFiles]);
          const old = running;
          running = sinks;
          for (const sink of sinks.sinks) pipeline.add(sink);
          void Promise.all(old.sinks.map((s) => pipeline.remove(s))).then(() => old.close());
        },
        abandon() {
          void sinks.close();
        },
      };
    },
    close: () => running.close(),
  };
}

// The anomaly path: every flow record and DNS query goes to the anomaly engine, and what it finds
// goes through the pipeline as a type "anomaly" event (docs/anomaly.md). The engine's state
// (profiles, acceptances) is kept in a file beside the history and read back at start, so
// baselines and "accept as normal" survive a restart.
import type { AnomalyView } from "../api/index.ts";
import type { AnomalyModel } from "../config/index.ts";
import type { MoatEvent } from "../datapath/index.ts";
import {
  AnomalyDetector,
  anomalyEvent,
  anomalySettingsOf,
  loadAnomalyState,
  saveAnomalyState,
  type Acceptance,
  type FlowRecord,
} from "../observe/index.ts";

/** How often the state is written. */
const SAVE_MS = 5 * 60_000;

export interface AnomalyPathOptions {
  /** The running policy's `anomaly` section (undefined: the defaults). */
  settings: () => AnomalyModel | undefined;
  mode: () => MoatEvent["mode"];
  push: (event: MoatEvent) => void;
  /** Where the state is kept; null: in memory only. */
  statePath: string | null;
  /** Who accepted what, for the audit log. */
  audit: (line: string) => void;
  log: (line: string) => void;
}

export interface AnomalyPath {
  flow(r: FlowRecord): void;
  dns(ev: MoatEvent): void;
  /** The policy changed: the settings are read again. */
  applied(): void;
  list(): AnomalyView;
  /** Accepts anomaly `id` as normal; null when none has that id. */
  accept(id: string, who: string): Acceptance | null;
  close(): void;
}

export function startAnomalyPath(options: AnomalyPathOptions): AnomalyPath {
  const mode = options.mode;
  const detector = new AnomalyDetector(anomalySettingsOf(options.settings()), (r) =>
    options.push(anomalyEvent(r, mode())),
  );
  let enabled = options.settings()?.enabled ?? true;
  const path = options.statePath;
  if (path) {
    try {
      loadAnomalyState(path, detector);
    } catch (err) {
      options.log(
        `warning: anomaly state ${path} could not be read (${(err as Error).message}): baselines start afresh`,
      );
    }
  }
  let saveWarned = false;
  const save = () => {
    if (!path) return;
    try {
      saveAnomalyState(path, detector);
      saveWarned = false;
    } catch (err) {
      if (!saveWarned)
        options.log(`warning: anomaly state was not saved: ${(err as Error).message}`);
      saveWarned = true;
    }
  };
  const timer = setInterval(save, SAVE_MS);
  timer.unref();
  return {
    flow: (r) => {
      if (enabled) detector.flow(r);
    },
    dns: (ev) => {
      if (enabled) detector.dns(ev);
    },
    applied() {
      const m = options.settings();
      enabled = m?.enabled ?? true;
      detector.settings = anomalySettingsOf(m);
    },
    list: () => ({
      enabled,
      anomalies: detector.recent.map((a) => ({
        accepted: a.accepted,
        event: anomalyEvent(a, mode()),
      })),
      accepted: [...detector.accepted.values()],
    }),
    accept(id, who) {
      const accepted = detector.accept(id, who);
      if (accepted) {
        options.audit(
          `anomaly ${id} (${accepted.kind} ${accepted.key}) accepted as normal by ${who}`,
        );
        save();
      }
      return accepted;
    },
    close() {
      clearInterval(timer);
      save();
    },
  };
}

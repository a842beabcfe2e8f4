// The anomaly path: every flow record and DNS query goes to the anomaly engine, and what it finds
// goes through the pipeline as a type "anomaly" event (docs/anomaly.md). The engine's state
// (profiles, acceptances) is kept in a file beside the history and read back at start, so
// baselines and "accept as normal" survive a restart. A start without that file rebuilds the
// baselines from the history's hour and day roll-ups (read on the history's thread, within
// REBUILD_MS); the records that arrive meanwhile wait, then go through in order.
import type { AnomalyView } from "../api/index.ts";
import type { AnomalyModel } from "../config/index.ts";
import type { MoatEvent } from "../datapath/index.ts";
import {
  AnomalyDetector,
  anomalyEvent,
  anomalySettingsOf,
  loadAnomalyState,
  saveAnomalyState,
  saveAnomalyStateInSlices,
  seedFromRollups,
  type Acceptance,
  type BaselineInput,
  type FlowRecord,
} from "../observe/index.ts";

/** How often the state is written. */
const SAVE_MS = 5 * 60_000;
/** How long a rebuild from the roll-ups may take at start; past it, baselines start afresh. */
const REBUILD_MS = 30_000;
/** Records and queries held while the baselines are rebuilt; more are not judged (counted). */
const MAX_HELD = 100_000;

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
  /** The history's hour and day roll-ups up to a time (null or absent: no history). */
  rollups?: ((until: number) => Promise<BaselineInput>) | null;
  /** Default Date.now. */
  now?: () => number;
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
  /** Settles once the baselines are rebuilt from the roll-ups (at once when there was no need). */
  rebuilt: Promise<void>;
}

export function startAnomalyPath(options: AnomalyPathOptions): AnomalyPath {
  const mode = options.mode;
  const detector = new AnomalyDetector(anomalySettingsOf(options.settings()), (r) =>
    options.push(anomalyEvent(r, mode())),
  );
  let enabled = options.settings()?.enabled ?? true;
  const path = options.statePath;
  let loaded = false;
  if (path) {
    try {
      loaded = loadAnomalyState(path, detector);
    } catch (err) {
      // the message names the file and what is wrong with it
      options.log(
        `warning: ${(err as Error).message}; it is not used: baselines are rebuilt from the roll-ups`,
      );
    }
  }
  // while the roll-ups are read, what arrives waits (null: nothing waits)
  let held: ({ flow: FlowRecord } | { dns: MoatEvent })[] | null = null;
  let dropped = 0;
  const hold = (item: { flow: FlowRecord } | { dns: MoatEvent }): boolean => {
    if (!held) return false;
    if (held.length < MAX_HELD) held.push(item);
    else dropped++;
    return true;
  };
  const rebuilt =
    loaded || !options.rollups ? Promise.resolve() : rebuild(options.rollups, options.now?.());
  async function rebuild(
    rollups: (until: number) => Promise<BaselineInput>,
    now = Date.now(),
  ): Promise<void> {
    held = [];
    const started = performance.now();
    let timer: NodeJS.Timeout | undefined;
    try {
      const input = await Promise.race([
        rollups(now),
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(new Error(`not read within ${REBUILD_MS / 1000} s`)),
            REBUILD_MS,
          );
          timer.unref();
        }),
      ]);
      const r = seedFromRollups(detector, input, now);
      const over = input.overflow ? ` (${input.overflow} older rows not read)` : "";
      options.log(
        `anomaly baselines rebuilt from the roll-ups: ${r.identities} identities from ${r.rows} rows${over} (${Math.round(performance.now() - started)} ms)`,
      );
    } catch (err) {
      options.log(
        `warning: anomaly baselines not rebuilt from the roll-ups (${(err as Error).message}): they start afresh`,
      );
    } finally {
      clearTimeout(timer);
      const waiting = held;
      held = null;
      for (const item of waiting) {
        if (!enabled) break;
        if ("flow" in item) detector.flow(item.flow);
        else detector.dns(item.dns);
      }
      if (dropped)
        options.log(
          `warning: ${dropped} flow records and queries came while the baselines were rebuilt, more than ${MAX_HELD}: not judged`,
        );
    }
  }
  let saveWarned = false;
  const saved = (err?: unknown) => {
    if (err === undefined) saveWarned = false;
    else if (!saveWarned) {
      options.log(`warning: anomaly state was not saved: ${(err as Error).message}`);
      saveWarned = true;
    }
  };
  /** Saves made at once; a save in slices that began before one is dropped. */
  let savedAtOnce = 0;
  const save = () => {
    if (!path) return;
    savedAtOnce++;
    try {
      saveAnomalyState(path, detector);
      saved();
    } catch (err) {
      saved(err);
    }
  };
  let slicing = false;
  const saveInSlices = () => {
    if (!path || slicing) return;
    slicing = true;
    const began = savedAtOnce;
    saveAnomalyStateInSlices(path, detector, () => savedAtOnce !== began)
      .then(() => saved(), saved)
      .finally(() => (slicing = false));
  };
  const timer = setInterval(saveInSlices, SAVE_MS);
  timer.unref();
  return {
    flow: (r) => {
      if (enabled && !hold({ flow: r })) detector.flow(r);
    },
    dns: (ev) => {
      if (enabled && !hold({ dns: ev })) detector.dns(ev);
    },
    rebuilt,
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

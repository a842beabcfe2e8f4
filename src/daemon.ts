// The moat daemon: loads the policy, compiles it into the datapath, attaches, reports every
// event, and reloads atomically on demand (SIGHUP, file change, API). Never exits the process.
import { Datapath } from "./datapath/datapath.ts";
import { decodeEvent } from "./datapath/events.ts";
import { checkPrerequisites } from "./datapath/prerequisites.ts";
import { listInterfaces, selectInterfaces } from "./datapath/interfaces.ts";
import { formatDiagnostic, PolicyError } from "./config/index.ts";
import { watchFiles } from "./config/watch.ts";
import { loadForDatapath, type LoadedPolicy } from "./policy/load-for-datapath.ts";
import type { ImageRule } from "./policy/compile/image.ts";
import { createOutputs } from "./observe/outputs.ts";
import { lossReport } from "./observe/loss-report.ts";

export interface DaemonOptions {
  policyPath: string;
  /** Overrides the policy's attach.interfaces. */
  interfaces?: string[];
  json: boolean;
  pinRoot?: string | null;
  log: (line: string) => void;
}

export interface ReloadResult {
  ok: boolean;
  generation: number;
  errors: string[];
}

export interface Daemon {
  datapath: Datapath;
  /** Re-reads the policy file; an invalid one is refused and the running policy stays. */
  reload(reason: string): ReloadResult;
  /** Reopens the audit log (after logrotate). */
  reopenLogs(): void;
  stop(): void;
  /** Resolves once stop() has detached everything. */
  stopped: Promise<void>;
}

const LOSS_REPORT_MS = 5000;

/** Rule tables of recent generations, so a late event still names the rule that decided it. */
const KEPT_GENERATIONS = 4;

export function startDaemon(options: DaemonOptions): Daemon {
  checkPrerequisites();
  const { log } = options;
  let active: LoadedPolicy = loadForDatapath(options.policyPath);
  const outputs = createOutputs(log, options.json);
  outputs.setAuditPath(active.model.logging.audit?.value.path ?? null);

  const all = listInterfaces();
  const names = new Map(all.map((n) => [n.ifindex, n.name]));
  const patterns = options.interfaces ?? active.model.attach.interfaces.value;
  const nics = selectInterfaces(patterns, all);
  const datapath = Datapath.start({
    interfaces: nics,
    pinRoot: options.pinRoot,
    image: active.image,
  });
  const rulesByGeneration = new Map<number, ImageRule[]>([
    [datapath.generation, active.image.rules],
  ]);

  for (const o of datapath.objects) log(`loaded ${o.file}: ${o.programs.join(", ")}`);
  for (const a of datapath.attachments) {
    const pin = a.pin ? `, pinned at ${a.pin}` : "";
    log(
      `attached ${a.program} to ${a.interface} (ifindex ${a.ifindex}) ${a.hook} ${a.mode}, link ${a.linkId}${pin}`,
    );
  }
  for (const s of datapath.skipped) log(`skipped ${s.interface}: ${s.reason}`);
  if (nics.length === 0) log(`no interface matches ${patterns.join(", ")}`);
  const describe = (p: LoadedPolicy, generation: number, ms?: number) =>
    `policy ${options.policyPath} applied: generation ${generation}, ${p.model.rules.length} rules, mode ${p.model.mode}` +
    (ms === undefined ? "" : ` (${ms.toFixed(1)} ms)`);
  log(describe(active, datapath.generation));

  const bootTimeMs = Date.now() - Number(process.hrtime.bigint() / 1_000_000n);
  datapath.subscribe((record) =>
    outputs.emit(
      decodeEvent(record, {
        bootTimeMs,
        rule: (index, generation) => rulesByGeneration.get(generation)?.[index],
        interfaceName: (i) => names.get(i) ?? null,
      }),
    ),
  );

  // losses are counted in the kernel and reported here, never silent
  let lastCounts = datapath.counters();
  const reportLoss = () => {
    const now = datapath.counters();
    const line = lossReport(lastCounts, now);
    lastCounts = now;
    if (line) log(line);
  };
  const lossTimer = setInterval(reportLoss, LOSS_REPORT_MS);
  lossTimer.unref();

  const watcher = watchFiles(() => reload("file changed"));
  watcher.set([options.policyPath, ...active.model.setFiles]);

  function reload(reason: string): ReloadResult {
    let next: LoadedPolicy;
    try {
      next = loadForDatapath(options.policyPath);
      outputs.setAuditPath(next.model.logging.audit?.value.path ?? null);
    } catch (err) {
      const errors =
        err instanceof PolicyError
          ? err.diagnostics.map(formatDiagnostic)
          : [`${options.policyPath}: ${(err as Error).message}`];
      log(`reload refused (${reason}), keeping generation ${datapath.generation}:`);
      for (const e of errors) log(e);
      return { ok: false, generation: datapath.generation, errors };
    }
    const { generation, ms } = datapath.apply(next.image);
    active = next;
    rulesByGeneration.set(generation, next.image.rules);
    rulesByGeneration.delete(generation - KEPT_GENERATIONS);
    watcher.set([options.policyPath, ...next.model.setFiles]);
    log(describe(next, generation, ms));
    return { ok: true, generation, errors: [] };
  }

  let resolve: () => void = () => {};
  const stopped = new Promise<void>((r) => (resolve = r));
  let done = false;
  return {
    datapath,
    reload,
    reopenLogs: () => outputs.reopen(),
    stopped,
    stop() {
      if (done) return;
      done = true;
      clearInterval(lossTimer);
      reportLoss();
      watcher.close();
      datapath.stop();
      outputs.close();
      log("detached all programs; bye");
      resolve();
    },
  };
}

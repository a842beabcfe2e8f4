// The moat daemon: loads the policy, compiles it into the datapath, attaches, sends every event
// through the pipeline to its sinks (stdout, audit log, history, API subscribers, the policy's
// own), serves the API, and reloads atomically on demand (SIGHUP, file change, API). Never exits
// the process.
import { Datapath } from "./datapath/datapath.ts";
import { decodeEvent } from "./datapath/events.ts";
import { destroyBlockedSocket } from "./datapath/post-route.ts";
import { Attribution, DOCKER_ROOT } from "./attribution/index.ts";
import { boundSocketOwners } from "./attribution/listeners.ts";
import { readProcessUniverse, universeFingerprint } from "./policy/process-universe.ts";
import { namesProcesses } from "./policy/compile/policy-image.ts";
import type { UniverseReader } from "./policy/load-for-datapath.ts";
import { cgroup2Mount, cgroupDirectory, checkPrerequisites } from "./datapath/prerequisites.ts";
import { watchCgroups } from "./policy/cgroup-watch.ts";
import { listInterfaces, selectInterfaces } from "./datapath/interfaces.ts";
import { formatDiagnostic, nodeHost, PolicyError, type PolicyModel } from "./config/index.ts";
import { diagnostic } from "./config/diagnostics.ts";
import { watchFiles } from "./config/watch.ts";
import type { LoadedPolicy } from "./policy/load-for-datapath.ts";
import type { ClassifierImage, ImageRule } from "./policy/compile/image.ts";
import { Relay } from "./redirect/relay.ts";
import { lossReport } from "./observe/loss-report.ts";
import { EventPipeline } from "./observe/pipeline.ts";
import { stdoutSink } from "./observe/stdout-sink.ts";
import { auditSink } from "./observe/audit-sink.ts";
import { HistoryWorker } from "./observe/history/remote.ts";
import { historySink } from "./observe/history/sink.ts";
import { snapshotSource } from "./observe/snapshot.ts";
import { sinksFromPolicy, type PolicySinks } from "./observe/policy-sinks.ts";
import type { SnapshotSource } from "./observe/sink.ts";
import { startApi, type ApiServer, type ListenerOptions } from "./api/server.ts";
import { DEFAULT_SOCKET } from "./api/listen.ts";
import type { ApiControl } from "./api/control.ts";
import {
  compilePolicyText,
  sha256,
  validatePolicyText,
  withMode,
  writePolicyFile,
} from "./daemon/policy-text.ts";

export const DEFAULT_HISTORY = "/var/lib/moat/history.db";

export interface DaemonOptions {
  policyPath: string;
  /** Overrides the policy's attach.interfaces. */
  interfaces?: string[];
  json: boolean;
  pinRoot?: string | null;
  /** The root-only API socket (default /run/moat/api.sock); null = no unix socket. */
  apiSocket?: string | null;
  /** Overrides logging.history.path; null turns the history off. */
  historyPath?: string | null;
  /**
   * Data roots of other dockerds (their --data-root), read for container names and images in
   * addition to /var/lib/docker.
   */
  dockerRoots?: string[];
  log: (line: string) => void;
}

export interface ReloadResult {
  ok: boolean;
  generation: number;
  errors: string[];
}

export interface Daemon {
  datapath: Datapath;
  /** Resolves once the API listens (rejects, after stopping, if it cannot). */
  ready: Promise<void>;
  /** Where the API listens. */
  apiAddresses(): string[];
  snapshot: SnapshotSource;
  /** Re-reads the policy file; an invalid one is refused and the running policy stays. */
  reload(reason: string): ReloadResult;
  /** Applies `text` as the policy (and saves it to the policy file), on behalf of `who`. */
  apply(text: string, who: string): ReloadResult;
  /** Reopens the audit log (after logrotate). */
  reopenLogs(): void;
  stop(): void;
  /** Resolves once stop() has detached everything and closed every sink. */
  stopped: Promise<void>;
}

const LOSS_REPORT_MS = 5000;
/** How often the executables, users and cgroups that process rules name are read again. */
const UNIVERSE_MS = 3000;
/** An event naming an unknown interface reads the interface list again, at most this often. */
const NAMES_REREAD_MS = 1000;

/** Rule tables of recent generations, so a late event still names the rule that decided it. */
const KEPT_GENERATIONS = 4;

interface Running extends LoadedPolicy {
  text: string;
  hash: string;
}

function readPolicy(path: string, universe: UniverseReader): Running {
  let text: string;
  try {
    text = nodeHost.readFile(path);
  } catch (err) {
    const at = { file: path, line: 1, col: 1, path: "(file)" };
    throw new PolicyError([diagnostic(at, `cannot read policy file: ${(err as Error).message}`)]);
  }
  return { ...compilePolicyText(text, path, universe), text, hash: sha256(text) };
}

const errorLines = (err: unknown, path: string): string[] =>
  err instanceof PolicyError
    ? err.diagnostics.map(formatDiagnostic)
    : [`${path}: ${(err as Error).message}`];

function historyStore(model: PolicyModel, options: DaemonOptions): HistoryWorker | null {
  const conf = model.logging.history?.value;
  const path =
    options.historyPath === undefined ? (conf?.path ?? DEFAULT_HISTORY) : options.historyPath;
  if (path === null) return null;
  return new HistoryWorker(path, {
    ...(conf?.maxAgeSeconds ? { maxAgeSeconds: conf.maxAgeSeconds } : {}),
    ...(conf?.maxBytes ? { maxBytes: conf.maxBytes } : {}),
  });
}

function apiListeners(model: PolicyModel, options: DaemonOptions): ListenerOptions[] {
  const socket = options.apiSocket === undefined ? DEFAULT_SOCKET : options.apiSocket;
  const conf = model.api?.value;
  const listeners: ListenerOptions[] = [];
  // the policy may move the unix socket; a TCP listener comes in addition to it
  if (conf?.listen.startsWith("unix:") && options.apiSocket === undefined)
    listeners.push({ listen: conf.listen });
  else if (socket !== null) listeners.push({ listen: `unix:${socket}` });
  if (conf && !conf.listen.startsWith("unix:")) {
    listeners.push({
      listen: conf.listen,
      ...(conf.tokenFile ? { tokenFile: conf.tokenFile } : {}),
      ...(conf.tls ? { tls: conf.tls } : {}),
    });
  }
  return listeners;
}

export async function startDaemon(options: DaemonOptions): Promise<Daemon> {
  checkPrerequisites();
  const { log } = options;
  // who owns a socket: events' process facts, and what process rules resolve to on this host
  const attribution = new Attribution({
    roots: { docker: [DOCKER_ROOT, ...(options.dockerRoots ?? [])] },
  });
  let resolved = "";
  const universe: UniverseReader = (model) => {
    const u = readProcessUniverse(model, attribution);
    resolved = universeFingerprint(u);
    return u;
  };
  let active = readPolicy(options.policyPath, universe);
  const pipeline = new EventPipeline();
  const audit = auditSink();
  audit.setPath(active.model.logging.audit?.value.path ?? null);
  pipeline.add(stdoutSink(log, options.json));
  pipeline.add(audit);
  const history = historyStore(active.model, options);
  history?.ready.catch((err: Error) => log(`warning: no event history: ${err.message}`));
  if (history) pipeline.add(historySink(history, log));

  const all = listInterfaces();
  const names = new Map(all.map((n) => [n.ifindex, n.name]));
  const patterns = options.interfaces ?? active.model.attach.interfaces.value;
  const nics = selectInterfaces(patterns, all);
  let datapath: Datapath;
  // redirects with a PROXY header go through moat's relay (src/redirect/relay.ts)
  const relay = await Relay.open({
    original: (peer) => datapath.originalOf(peer, "tcp"),
    redirect: (index, generation) => datapath.redirectOf(index, generation),
    log,
  });
  const viaRelay = (image: ClassifierImage): ClassifierImage => {
    for (const t of image.redirect?.targets ?? []) {
      if (!t.proxyProtocol) continue;
      const via = relay.addressFor(t.family);
      if (!via)
        throw new Error(
          `redirect ${t.name}: moat's relay has no IPv${t.family} loopback to listen on`,
        );
      t.via = via;
    }
    return image;
  };
  try {
    datapath = Datapath.start({
      interfaces: nics,
      pinRoot: options.pinRoot,
      image: viaRelay(active.image),
      cgroup: cgroupDirectory(active.model.attach.cgroup?.value),
    });
  } catch (err) {
    relay.close();
    void pipeline.close();
    throw err;
  }
  // moat's own connections (the relay's, exporters') are never redirected
  datapath.exemptFromRedirects(process.pid);
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
  // sockets bound before the accept hooks were attached: their owners from sock_diag and /proc
  if (datapath.attachments.some((a) => a.hook === "skb_ingress")) {
    const seeded = datapath.seedOwners(boundSocketOwners(attribution));
    log(`accept hook: owners of ${seeded} sockets bound before moat attached, from sock_diag`);
  }
  if (nics.length === 0) log(`no interface matches ${patterns.join(", ")}`);
  const describe = (p: LoadedPolicy, generation: number, ms?: number) =>
    `policy ${options.policyPath} applied: generation ${generation}, ${p.model.rules.length} rules, mode ${p.model.mode}` +
    (ms === undefined ? "" : ` (${ms.toFixed(1)} ms)`);
  log(describe(active, datapath.generation));

  const reloads = { ok: 0, refused: 0 };
  const snapshot = snapshotSource(
    datapath,
    {
      mode: () => active.model.mode,
      policyPath: options.policyPath,
      policyHash: () => active.hash,
      reloads,
    },
    pipeline,
  );
  let policySinks: PolicySinks = sinksFromPolicy(active.model, snapshot);
  for (const sink of policySinks.sinks) pipeline.add(sink);

  // interfaces made after start (a VPN coming up): named on their first event
  let namesRead = performance.now();
  const interfaceName = (ifindex: number): string | null => {
    if (!names.has(ifindex) && performance.now() - namesRead > NAMES_REREAD_MS) {
      namesRead = performance.now();
      for (const n of listInterfaces()) names.set(n.ifindex, n.name);
    }
    return names.get(ifindex) ?? null;
  };
  const bootTimeMs = Date.now() - Number(process.hrtime.bigint() / 1_000_000n);
  let destroyWarned = false;
  datapath.subscribe((record) => {
    // the post-route check dropped a SYN: the socket goes first, so connect() fails at once
    const destroyed = destroyBlockedSocket(record);
    if (destroyed?.error && !destroyWarned) {
      destroyWarned = true;
      log(
        `warning: a socket blocked after routing could not be destroyed (its connect() will time out): ${destroyed.error.message}`,
      );
    }
    pipeline.push(
      decodeEvent(record, {
        bootTimeMs,
        rule: (index, generation) => rulesByGeneration.get(generation)?.[index],
        interfaceName,
        process: (owner) => attribution.attribute(owner),
        redirect: (index, generation) => datapath.redirectOf(index, generation),
      }),
    );
  });

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

  // process and interface rules name executables, users, cgroups (containers), links and routes
  // that come and go: when what they resolve to changes, the policy is compiled again and swapped
  const checkUniverse = () => {
    if (!namesProcesses(active.model)) return;
    const u = readProcessUniverse(active.model, attribution);
    if (universeFingerprint(u) === resolved) return;
    try {
      const next = {
        ...compilePolicyText(active.text, options.policyPath, universe),
        text: active.text,
        hash: active.hash,
      };
      install(next, "processes changed");
    } catch (err) {
      log(`processes changed, the policy could not be compiled again: ${(err as Error).message}`);
    }
  };
  const universeTimer = setInterval(checkUniverse, UNIVERSE_MS);
  universeTimer.unref();
  // a new cgroup (a container starting) is resolved at once, not at the next re-read
  const mount = cgroup2Mount();
  const cgroupWatch = mount ? watchCgroups(mount, checkUniverse) : null;

  /** The hash of a policy this daemon wrote itself: its file-change event is not a new policy. */
  let selfWritten: string | null = null;
  const watcher = watchFiles(() => reload("file changed"));
  watcher.set([options.policyPath, ...active.model.setFiles]);

  function refuse(reason: string, errors: string[]): ReloadResult {
    reloads.refused++;
    log(`reload refused (${reason}), keeping generation ${datapath.generation}:`);
    for (const e of errors) log(e);
    return { ok: false, generation: datapath.generation, errors };
  }

  /** The one path every policy change takes: check, compile, swap atomically, re-plumb sinks. */
  function install(next: Running, reason: string): ReloadResult {
    let nextSinks: PolicySinks;
    try {
      nextSinks = sinksFromPolicy(next.model, snapshot);
    } catch (err) {
      return refuse(reason, errorLines(err, options.policyPath));
    }
    try {
      audit.setPath(next.model.logging.audit?.value.path ?? null);
    } catch (err) {
      void nextSinks.close();
      return refuse(reason, errorLines(err, options.policyPath));
    }
    // listeners and the store are opened once; say so rather than half-apply them
    for (const [name, before, after] of [
      ["api", active.model.api?.value, next.model.api?.value],
      ["logging.history", active.model.logging.history?.value, next.model.logging.history?.value],
    ] as const)
      if (JSON.stringify(before) !== JSON.stringify(after))
        log(`note: the change to '${name}' takes effect when moat restarts`);
    const { generation, ms } = datapath.apply(viaRelay(next.image));
    active = next;
    reloads.ok++;
    rulesByGeneration.set(generation, next.image.rules);
    rulesByGeneration.delete(generation - KEPT_GENERATIONS);
    watcher.set([options.policyPath, ...next.model.setFiles]);
    const old = policySinks;
    policySinks = nextSinks;
    for (const sink of nextSinks.sinks) pipeline.add(sink);
    void Promise.all(old.sinks.map((s) => pipeline.remove(s))).then(() => old.close());
    log(describe(next, generation, ms));
    return { ok: true, generation, errors: [] };
  }

  function reload(reason: string): ReloadResult {
    let next: Running;
    try {
      next = readPolicy(options.policyPath, universe);
    } catch (err) {
      return refuse(reason, errorLines(err, options.policyPath));
    }
    if (reason === "file changed" && selfWritten === next.hash) {
      selfWritten = null; // the API's own write: already applied
      return { ok: true, generation: datapath.generation, errors: [] };
    }
    return install(next, reason);
  }

  function apply(text: string, who: string, what = "policy"): ReloadResult {
    const hash = sha256(text);
    let next: Running;
    try {
      next = { ...compilePolicyText(text, options.policyPath, universe), text, hash };
    } catch (err) {
      const result = refuse(`${what} from ${who}`, errorLines(err, options.policyPath));
      audit.note(
        `POLICY REFUSED ${what} from ${who} (sha256 ${hash}): ${result.errors.length} errors`,
      );
      return result;
    }
    const result = install(next, `${what} from ${who}`);
    if (!result.ok) return result;
    try {
      selfWritten = hash;
      writePolicyFile(options.policyPath, text);
    } catch (err) {
      selfWritten = null;
      log(`warning: applied, but could not save ${options.policyPath}: ${(err as Error).message}`);
    }
    const line = `POLICY APPLIED ${what} by ${who}: generation ${result.generation}, mode ${next.model.mode}, sha256 ${hash}`;
    audit.note(line);
    log(line);
    return result;
  }

  const control: ApiControl = {
    snapshot,
    policy: () => ({
      path: options.policyPath,
      text: active.text,
      hash: active.hash,
      generation: datapath.generation,
      mode: active.model.mode,
    }),
    validate: (text) => validatePolicyText(text, options.policyPath),
    apply: (text, who) => apply(text, who),
    setMode: (mode, who) => apply(withMode(active.text, mode), who, `mode ${mode}`),
    queryHistory: (query) => history?.query(query) ?? null,
    original: (peer, protocol) => {
      const o = datapath.originalOf(peer, protocol);
      if (!o) return null;
      const p = o.owner ? attribution.attribute(o.owner) : null;
      return {
        original: o.original,
        protocol: o.protocol,
        redirect: datapath.redirectOf(o.redirect, o.generation)?.name ?? `#${o.redirect}`,
        target: o.target,
        process: p ? { pid: p.pid, name: p.name, user: p.user } : null,
      };
    },
    addSink: (sink, sinkOptions) => pipeline.add(sink, sinkOptions),
    removeSink: (sink) => pipeline.remove(sink),
    log,
  };

  let api: ApiServer | null = null;
  let done = false;
  let resolve: () => void = () => {};
  const stopped = new Promise<void>((r) => (resolve = r));

  function stop(): void {
    if (done) return;
    done = true;
    clearInterval(lossTimer);
    clearInterval(universeTimer);
    cgroupWatch?.close();
    reportLoss();
    watcher.close();
    relay.close();
    datapath.stop();
    log("detached all programs; bye");
    void (async () => {
      await api?.close();
      await pipeline.close();
      await policySinks.close();
      resolve();
    })();
  }

  const ready = startApi(control, apiListeners(active.model, options)).then(
    (server) => {
      api = server;
      for (const address of server.addresses) log(`api listening on ${address}`);
      if (done) void server.close();
    },
    (err: unknown) => {
      stop();
      throw err;
    },
  );

  return {
    datapath,
    ready,
    apiAddresses: () => api?.addresses ?? [],
    snapshot,
    reload,
    apply: (text, who) => apply(text, who),
    reopenLogs: () => audit.reopen(),
    stopped,
    stop,
  };
}

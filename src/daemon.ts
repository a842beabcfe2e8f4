// The moat daemon: loads the policy, compiles it into the datapath, attaches, sends every event
// through the pipeline to its sinks (stdout, audit log, history, API subscribers, the policy's
// own), serves the API, and reloads atomically on demand (SIGHUP, file change, API). Never exits
// the process. This file wires the parts in src/daemon/ together.
import { Attribution, DOCKER_ROOT, recentOwners } from "./attribution/index.ts";
import {
  attachHooks,
  cgroup2Mount,
  connectionsOf,
  cutConnections,
  cgroupDirectory,
  checkPrerequisites,
  destroyBlockedSocket,
  listInterfaces,
  watchAttach,
  closePreloaded,
  Datapath,
  PIN_ROOT,
  type Preloaded,
} from "./datapath/index.ts";
import {
  afterAcceptWorkerStops,
  afterRulesLetGo,
  locateOffThread,
  startAcceptWorker,
  watchFiles,
} from "./host/index.ts";
import { snapshotSource, type SnapshotSource } from "./observe/index.ts";
import { apiControl } from "./daemon/api-control.ts";
import { apiListeners } from "./daemon/at-start.ts";
import { daemonSinks } from "./daemon/daemon-sinks.ts";
import { fleetFollow } from "./daemon/fleet-follow.ts";
import { interfaceNames, startEventPath } from "./daemon/event-path.ts";
import { startFlowPath } from "./daemon/flow-path.ts";
import { startAnomalyPath } from "./daemon/anomaly-path.ts";
import { startQuicPath } from "./daemon/quic-path.ts";
import { startIdsPath } from "./daemon/ids-path.ts";
import { startHeartbeat } from "./daemon/heartbeat.ts";
import { startLimitSweep } from "./daemon/limit-sweep.ts";
import { startFloodWatch, synCookiesLine } from "./daemon/flood-watch.ts";
import { coalesced, hostUniverse, watchHost } from "./daemon/host-universe.ts";
import {
  compileReadPolicy,
  PolicyLifecycle,
  readFileText,
  type CompiledPolicy,
  type ReloadResult,
} from "./daemon/policy-lifecycle.ts";
import { DecisionStore, DEFAULT_DECISIONS } from "./daemon/decision-store.ts";
import { decidedConnection, LocalDecisions, type EntryLookups } from "./daemon/local-decisions.ts";
import { reviewPathOf } from "./daemon/review-file.ts";
import { policyPlumbing } from "./daemon/policy-plumbing.ts";
import { serveApi } from "./daemon/serve-api.ts";
import { tryListeners } from "./daemon/api-trial.ts";
import { watchAuditRotation } from "./daemon/audit-rotation.ts";
import { watchPins } from "./daemon/pin-watch.ts";
import { dynamicSets, joinedRefresh, type DynamicSets } from "./daemon/dynamic-sets.ts";
import { startFeeds, type Feeds } from "./daemon/feed-fetch.ts";
import { startCrowdsec, type Crowdsec } from "./daemon/crowdsec.ts";
import { quarantiner } from "./daemon/quarantine.ts";
import { setStoreDir } from "./host/index.ts";
import { ExeWatch, recordChange } from "./observe/index.ts";
import { giveMemoryBack } from "./daemon/memory-back.ts";
import { seedBoundOwners, startDatapath } from "./daemon/start-datapath.ts";
import { nameServiceStatus, openDnsNames } from "./daemon/dns-names.ts";
import { serveNamespaces } from "./daemon/dns-netns.ts";
import { openL7Relay } from "./daemon/l7-relay.ts";
import { feedOf, namesProcesses, usesNames } from "./policy/index.ts";
import { relayedUpstream } from "./daemon/l7-upstream.ts";
import type { PolicyModel } from "./config/index.ts";
import {
  holdMallocThresholds,
  refuseLivePins,
  watchRtnl,
  type MoatEvent,
} from "./datapath/index.ts";
import { dirname, join } from "node:path";

export { DEFAULT_HISTORY } from "./daemon/at-start.ts";

/** A function that returns `value` (it holds `value` alone, not the caller's scope). */
const constant =
  <T>(value: T): (() => T) =>
  () =>
    value;

/** A state file beside the history's (none when the history is off or in memory): the anomaly
 * engine's, the executables' contents. */
function statePath(historyPath: string | undefined, name: string): string | null {
  if (!historyPath || historyPath === ":memory:") return null;
  return join(dirname(historyPath), name);
}

/** An event of a rule that matched through a feed or dynamic set carries the feed's metadata. */
function withFeed(event: MoatEvent, model: PolicyModel): MoatEvent {
  if (event.type === "closed" || model.sets.size === 0) return event;
  const feed = feedOf(model, event.rule, event.remote.ip);
  return feed ? { ...event, feed } : event;
}
export type { ReloadResult } from "./daemon/policy-lifecycle.ts";

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
  /** Where local decisions are kept (default /var/lib/moat/decisions.json); null: in memory. */
  decisionsPath?: string | null;
  /**
   * Data roots of other dockerds (their --data-root), read for container names and images in
   * addition to /var/lib/docker.
   */
  dockerRoots?: string[];
  log: (line: string) => void;
}

export interface Daemon {
  datapath: Datapath;
  /** Resolves once the API listens (rejects, after stopping, if it cannot). */
  ready: Promise<void>;
  /** Where the API listens. */
  apiAddresses(): string[];
  snapshot: SnapshotSource;
  /** Re-reads the policy file; an invalid one is refused and the running policy stays. */
  reload(reason: string): Promise<ReloadResult>;
  /** Applies `text` as the policy (and saves it to the policy file), on behalf of `who`. */
  apply(text: string, who: string): Promise<ReloadResult>;
  /** Reopens the audit log (after logrotate). */
  reopenLogs(): void;
  /**
   * Detaches every program and removes the pins; with `handOver`, leaves them attached and
   * pinned, enforcing, for the next daemon to take over (a restart without a gap).
   */
  stop(options?: { handOver?: boolean }): void;
  /** Resolves once stop() has detached everything (or handed it over) and closed every sink. */
  stopped: Promise<void>;
}

export async function startDaemon(options: DaemonOptions): Promise<Daemon> {
  checkPrerequisites();
  // another daemon's pins are live: refused before anything is loaded or adopted
  const pinRoot = options.pinRoot === undefined ? PIN_ROOT : options.pinRoot;
  if (pinRoot !== null) refuseLivePins(pinRoot);
  // before the policy worker's first parse: what a big policy's work frees at the top of a
  // thread's arena goes back to the system, not only what trimMemory reaches
  holdMallocThresholds();
  // the policy worker loads its modules on its thread while this one opens the proxies and
  // loads the programs
  startAcceptWorker();
  const { log, policyPath } = options;
  // who owns a socket: events' process facts, and what process rules resolve to on this host
  const attribution = new Attribution({
    roots: { docker: [DOCKER_ROOT, ...(options.dockerRoots ?? [])] },
  });
  const universe = hostUniverse(attribution);
  // an owner's facts, read from /proc at most once a second per owner: a client making
  // connection after connection is one owner for the relay, the events and the flow records
  const owners = recentOwners((owner) => attribution.attribute(owner));
  // what moat's DNS proxy reaches, as each starts: it opens first, so every policy compiles with
  // its port (the implicit DNS redirect)
  const live: {
    datapath?: Datapath;
    model?: () => PolicyModel;
    push?: (event: MoatEvent) => void;
  } = {};
  const dns = await openDnsNames({
    original: (peer, protocol, netns) => live.datapath?.originalOf(peer, protocol, netns) ?? null,
    datapath: () => live.datapath ?? null,
    policy: () => live.model?.() ?? null,
    generation: () => live.datapath?.generation ?? 0,
    process: (owner) => attribution.attribute(owner),
    report: (event) => live.push?.(event),
    log,
  });
  // moat's L7 relay, as the DNS proxy: open before the first compile (its port is a redirect's)
  const l7 = await openL7Relay({
    original: (peer) => live.datapath?.originalOf(peer, "tcp") ?? null,
    process: owners,
    names: (owner, ip) => dns.namesOf(owner, ip),
    policy: () => live.model?.() ?? null,
    generation: () => live.datapath?.generation ?? 0,
    report: (event) => live.push?.(event),
    log,
    connectUpstream: relayedUpstream(() => live.datapath ?? null),
    // connections reach the relay only once a policy is applied: the datapath is there
    splice: (client, upstream, control) => {
      if (!live.datapath) return Promise.reject(new Error("the datapath is not running"));
      return live.datapath.splice(client, upstream, control);
    },
  });
  const compile = { ...dns.compileOptions, ...l7.compileOptions };
  // moat's local decisions: judged before the file's rules in every policy it compiles
  const decisionsPath =
    options.decisionsPath === undefined ? DEFAULT_DECISIONS : options.decisionsPath;
  const decisionStore = new DecisionStore({ path: decisionsPath, log });
  // what a policy change freed (the policy before it, a big policy's parse) goes back to the
  // system once the accept worker stops, and a big policy's rules once let go unread
  afterAcceptWorkerStops(giveMemoryBack);
  afterRulesLetGo(giveMemoryBack);
  let preloaded: Preloaded | undefined;
  let initial: CompiledPolicy;
  try {
    // on the worker thread, as reloads are: the reading's garbage stays in the worker's heap,
    // which is given back when the worker stops, not in the daemon's. The text is posted to it
    // before the programs load, so it is checked and compiled meanwhile.
    const text = await readFileText(policyPath);
    const reading = compileReadPolicy(
      text,
      policyPath,
      universe.read,
      compile,
      true,
      decisionStore.list(),
      decisionStore.mode()?.mode,
    );
    // the programs loaded and verified before the policy is known (most of a start's time): a
    // load that fails here fails again, and is reported, where the start loads them
    try {
      preloaded = Datapath.preload({ pinRoot: options.pinRoot });
    } catch {
      preloaded = undefined;
    }
    initial = await reading;
    // an API that cannot listen fails the start here, before the pins are adopted
    await tryListeners(apiListeners(initial.model, options.apiSocket));
  } catch (err) {
    if (preloaded) closePreloaded(preloaded);
    l7.close();
    dns.close();
    throw err;
  }
  // not a closure over `initial`: one would keep it (and every policy it held) for the daemon's life
  live.model = constant(initial.model);
  const { pipeline, audit, history } = daemonSinks(initial.model, options);
  const rotation = watchAuditRotation(audit, log);
  const pins = pinRoot === null ? null : watchPins(() => datapath.restorePins(), pinRoot, log);
  // anomaly detection over flow records and DNS queries; its state beside the history
  const anomalies = startAnomalyPath({
    settings: () => live.model?.().anomaly,
    mode: () => live.model?.().mode ?? "detect",
    push: (event) => pipeline.push(event),
    statePath: statePath(history?.path, "anomaly-state.json"),
    // without a state file, baselines are rebuilt from the history's roll-ups
    rollups: history ? (until) => history.baselineRows(until) : null,
    audit: (line) => audit.note(line),
    log,
  });
  // the content of each executable behind connections: a change is one exe_changed event
  const executables = new ExeWatch({
    statePath: statePath(history?.path, "executables.json"),
    mode: () => live.model?.().mode ?? "detect",
    push: (event) => pipeline.push(event),
    log,
  });
  live.push = (event) => {
    pipeline.push(event);
    if (event.type === "dns") anomalies.dns(event);
  };
  const { datapath, relay } = await startDatapath({
    ...options,
    ...initial,
    attribution,
    names: dns.atStart,
    ...(preloaded ? { preloaded } : {}),
  }).catch((err: unknown) => {
    l7.close();
    dns.close();
    void pipeline.close();
    throw err;
  });
  live.datapath = datapath;
  dns.applied(initial.model, initial.image);
  // interfaces and cgroups that come, go or change with a reload get or lose the programs
  const attach = (model: typeof initial.model) => ({
    hooks: attachHooks(model, options.interfaces),
    cgroup: cgroupDirectory(model.attach.cgroup?.value),
  });
  const attachWatch = watchAttach({
    datapath,
    ...attach(initial.model),
    log,
    onCgroupAttached: () => seedBoundOwners(datapath, attribution),
  });

  // failure.daemon: allow: the kernel passes everything once these beats stop
  const heartbeat = startHeartbeat(datapath);
  // every judged connection's flow records, added up a window at a time into the history
  const flowInterval = initial.model.logging.history?.value.flowIntervalSeconds;
  // what an event shows of a tracked connection: for its flow records and for a decision's cuts
  const entryLookups: EntryLookups = {
    rule: (index, generation) => datapath.contents.rule(index, generation)?.name,
    interfaceName: interfaceNames(
      listInterfaces,
      1000,
      (ifindex) => datapath.attachments.find((a) => a.ifindex === ifindex)?.interface,
    ),
    ingressHook: (ifindex) =>
      datapath.attachments.some((a) => a.ifindex === ifindex && a.hook === "tc-ingress")
        ? "tc"
        : "xdp",
    process: owners,
    names: (owner, ip) => dns.namesOf(owner, ip),
  };
  const flows = startFlowPath({
    conntrack: () => datapath.conntrackCounts(),
    ...entryLookups,
    store: history ? (summaries) => history.flows(summaries) : null,
    record: (r) => {
      anomalies.flow(r);
      executables.seen(r.connection, r.timeMs);
    },
    ...(flowInterval ? { intervalMs: flowInterval * 1000 } : {}),
    log,
  });
  // quarantine (rules with `quarantine:`): set once the dynamic sets exist, below
  const quarantine: { current?: (event: MoatEvent) => void } = {};
  // rate limits: idle sources and limits gone leave the state table
  const limitSweep = startLimitSweep(datapath);
  // SYN floods: each start and end of an attack on a defended port is an event
  const floodWatch = startFloodWatch(
    datapath,
    () => policy.active.model.synFlood?.mode ?? null,
    (event) => pipeline.push(event),
  );
  if (initial.model.synFlood) log(synCookiesLine(datapath.synCookies));
  const events = startEventPath({
    source: datapath,
    push: (event) => {
      const tagged = withFeed(event, policy.active.model);
      quarantine.current?.(tagged);
      pipeline.push(tagged);
      decisions.observe(tagged);
      if (tagged.process) executables.seen(tagged, Date.parse(tagged.time));
    },
    closed: (event) => flows.closed(event),
    process: owners,
    interfaces: listInterfaces,
    attachedName: (ifindex) => datapath.attachments.find((a) => a.ifindex === ifindex)?.interface,
    destroy: (record) => destroyBlockedSocket(record),
    names: (owner, ip) => dns.namesOf(owner, ip),
    log,
    // failure.events_lost: notify: lost kernel events become a notice through every sink
    eventsLost: () => policy.active.model.failure.eventsLost,
    notice: (n) => pipeline.notice(n),
    ruleNames: { dir: statePath(history?.path, "rule-names"), pinRoot },
  });
  // the ClientHello of QUIC flows, read from their first datagrams (docs/l7-quic.md)
  startQuicPath({
    source: datapath,
    push: (event) => pipeline.push(event),
    process: (owner) => attribution.attribute(owner),
    names: (owner, ip) => dns.namesOf(owner, ip),
  });
  // ids signatures on the first bytes of flows (docs/policy.md, "ids")
  const idsPath = startIdsPath({
    source: datapath,
    model: () => policy.active.model,
    push: (event) => pipeline.push(event),
    process: (owner) => attribution.attribute(owner),
    interfaceName: (ifindex) =>
      datapath.attachments.find((a) => a.ifindex === ifindex)?.interface ?? null,
    cut: (copy) => {
      const done = datapath.cutIds(copy);
      return done.blocked || done.destroyed;
    },
  });
  const ids = initial.model.ids;
  if (ids)
    log(
      `ids: ${ids.signatures.length} signatures on the first ${ids.bytes} bytes of ${ids.sample === 1 ? "every flow" : `1 in ${ids.sample} flows`}, mode ${ids.mode}` +
        (ids.refused ? `; ${ids.refused} refused (moat check ${policyPath} says why)` : ""),
    );
  const snapshot = snapshotSource(
    datapath,
    {
      mode: () => policy.active.model.mode,
      policyPath,
      policyHash: () => policy.active.hash,
      get reloads() {
        return policy.reloads;
      },
      warnings: nameServiceStatus(() => policy.active.model),
      flows: () => flows.counters(),
      ids: () => idsPath.counters(),
      feeds: () => sources.sets?.feeds.stats() ?? [],
    },
    pipeline,
  );
  // the policy worker (stopped when idle) starts at a change's first event: its modules load
  // during the debounce and the file's read, not after them
  const watcher = watchFiles(
    () => void policy.reload("file changed"),
    undefined,
    startAcceptWorker,
  );
  const plumbing = policyPlumbing(initial.model, {
    policyPath,
    pipeline,
    audit,
    snapshot,
    watch: watcher,
    attach: (model) => {
      const next = attach(model);
      attachWatch.update(next.hooks, next.cgroup);
    },
    log,
  });
  // dynamic sets and URL feeds: their entries live in the set store, read as the policy loads
  const sources: { sets?: { dynamic: DynamicSets; feeds: Feeds; crowdsec: Crowdsec } } = {};
  const policy = new PolicyLifecycle({
    path: policyPath,
    initial,
    target: {
      get generation() {
        return datapath.generation;
      },
      apply: (image, bindings, beforeFlip) => datapath.applyInTurns(image, bindings, beforeFlip),
    },
    tablesAhead: (tables) => datapath.buildAhead(tables),
    plumbing,
    audit: (line) => audit.note(line),
    log,
    universe: universe.read,
    route: (image) => relay.route(image),
    compile,
    decisions: () => decisionStore.list(),
    // `moat mode`: a local decision over the file's mode
    mode: () => decisionStore.mode()?.mode,
    bindings: dns.bindingsFor,
    applied: (p) => {
      events.applied();
      dns.applied(p.model, p.image);
      void netns.refresh();
      // spliced connections the new policy no longer lets through are cut
      l7.relay?.rejudge();
      anomalies.applied();
      idsPath.applied();
      host.follow(universe.directories(p.model));
      // asked at each change of the host: worked out now, while a big policy's rules are made
      namesProcesses(p.model);
      fleet.update(p.model);
      sources.sets?.dynamic.applied();
      sources.sets?.feeds.applied();
      sources.sets?.crowdsec.applied();
    },
  });
  live.model = () => policy.active.model;
  const refreshSets = joinedRefresh((reason) => policy.recompile(reason));
  const setSources = {
    dynamic: dynamicSets({
      dir: setStoreDir(),
      model: () => policy.active.model,
      refresh: refreshSets,
      generation: () => datapath.generation,
      audit: (line) => recordChange(audit, log, line),
      log,
    }),
    feeds: startFeeds({
      dir: setStoreDir(),
      model: () => policy.active.model,
      refresh: refreshSets,
      log,
      notice: (n) => pipeline.notice(n),
    }),
  };
  const crowdsec = startCrowdsec({
    model: () => policy.active.model,
    sets: setSources.dynamic,
    log,
  });
  sources.sets = { ...setSources, crowdsec };
  quarantine.current = quarantiner({
    model: () => policy.active.model,
    sets: setSources.dynamic,
    log,
  });
  setSources.dynamic.applied();
  crowdsec.applied();
  log(policy.describe(initial, datapath.generation));
  policy.logWarnings(initial, true);
  const decisions = new LocalDecisions({
    store: decisionStore,
    install: (why, beforeSwap) => policy.decisionsChanged(why, beforeSwap),
    installMode: (mode, who) => policy.setMode(mode, who),
    model: () => policy.active.model,
    // the review queue, beside the decisions
    reviewPath: decisionsPath === null ? null : reviewPathOf(decisionsPath),
    // what the policy without the decision blocks is cut; the rest goes on to be judged again
    cut: (rule, judgement) => {
      const name = entryLookups.rule;
      const errors = new Set<string>();
      let destroyed = 0;
      const open = connectionsOf(datapath.conntrack(), (e) => name(e.rule, e.generation) === rule);
      for (const entry of open) {
        const blocked = judgement.blocked(decidedConnection(entry, entryLookups));
        if (!blocked) continue;
        const report = cutConnections([entry]);
        for (const error of report.errors) errors.add(error);
        if (report.destroyed === 0) continue;
        destroyed++;
        judgement.cut(blocked);
      }
      for (const error of errors)
        log(`warning: a connection of ${rule} could not be cut: ${error}`);
      return destroyed;
    },
    report: (event) => pipeline.push(event),
    audit: (line) => audit.note(line),
    log,
  });
  // containers in network namespaces of their own get the DNS proxy's sockets inside them
  const netns = serveNamespaces({
    proxy: dns.proxy,
    datapath,
    cgroupDir: () => {
      const m = policy.active.model;
      if (!usesNames(m)) return null;
      try {
        return cgroupDirectory(m.attach.cgroup?.value) ?? null;
      } catch {
        return null;
      }
    },
    log,
  });
  void netns.refresh();
  // process and interface rules name executables, users, cgroups (containers), links and routes
  // that come and go: when what they resolve to changes, the policy is compiled again (one
  // compile at a time: a burst of changes during one leads to one more, not one each)
  const recompile = coalesced(async () => {
    // a recompile that fails is logged; the running policy stays
    if (universe.changed(policy.active.model))
      await policy.recompile("processes changed").catch(() => {});
  });
  const host = watchHost(
    () => {
      recompile();
      netns.refreshAfterChange();
    },
    {
      cgroupMount: cgroup2Mount(),
      routeEvents: (onChange) => watchRtnl(["link", "address", "route", "rule"], onChange),
      onRoutes: () => universe.routesChanged(),
    },
  );
  host.follow(universe.directories(policy.active.model));

  // fleet.policy: this host's policy key in a JetStream bucket, applied as `moat policy apply` is
  const fleet = fleetFollow({
    policyPath,
    apply: (text, who, admit) => policy.apply(text, who, { admit }),
    running: () => policy.active,
    onTrial: () => policy.onTrial,
    log,
  });
  fleet.update(policy.active.model);

  const control = apiControl({
    policyPath,
    sets: setSources,
    policy,
    datapath,
    attribution,
    pipeline,
    history,
    snapshot,
    audit,
    anomalies,
    decisions,
    log,
  });
  let done = false;
  let resolveStopped = () => {};
  const stopped = new Promise<void>((r) => (resolveStopped = r));
  function stop(options: { handOver?: boolean } = {}): void {
    if (done) return;
    done = true;
    host.close();
    decisions.close();
    setSources.dynamic.close();
    setSources.feeds.close();
    crowdsec.close();
    policy.stop();
    const fleetClosed = fleet.close();
    heartbeat.stop();
    limitSweep.stop();
    floodWatch.stop();
    events.close();
    // the last window: the table is read now, before the datapath goes
    const flowsClosed = flows.close();
    watcher.close();
    relay.close();
    l7.close();
    netns.close();
    dns.close();
    void attachWatch.close();
    rotation.close();
    pins?.close();
    if (options.handOver) pins?.check();
    datapath.stop({ keepPins: options.handOver === true });
    log(
      options.handOver
        ? "left the programs attached and pinned for the next daemon; bye"
        : "detached all programs; bye",
    );
    void (async () => {
      await api.close();
      await fleetClosed;
      await flowsClosed;
      anomalies.close();
      executables.close();
      await pipeline.close();
      await plumbing.close();
      resolveStopped();
    })();
  }
  // a start that took over pinned state and fails anyway leaves it enforcing, as the previous
  // daemon's death did: a failed restart never opens the host
  const tookOver = !!(datapath.adoption?.adopted.length || datapath.adoption?.migrated.length);
  const api = serveApi(control, apiListeners(initial.model, options.apiSocket), () =>
    stop({ handOver: tookOver }),
  );
  // the policy is in place: where its rules are in the file is worked out on the worker now
  locateOffThread(initial.model);

  return {
    datapath,
    ready: api.ready,
    apiAddresses: () => api.addresses(),
    snapshot,
    reload: (reason) => policy.reload(reason),
    apply: (text, who) => policy.apply(text, who),
    reopenLogs: () => rotation.reopen(),
    stopped,
    stop,
  };
}

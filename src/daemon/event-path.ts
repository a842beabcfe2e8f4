// The event path: every kernel event record is decoded (rule and redirect names from the
// generation record, or from the rule names journal for a previous daemon's generations;
// interface names, the owner's process facts, the names the owner's DNS lookups gave the remote
// address) and pushed to the pipeline; a post-route block first destroys its socket, so connect()
// fails at once. Losses (ring buffer full, conntrack full) are counted in the kernel and reported
// here, never silent; with `failure.events_lost: notify`, events lost also become a notice
// through every sink.
import type { KernelOwner, ProcessFacts } from "../attribution/index.ts";
import {
  decodeEvent,
  type DestroyedSocket,
  type GenerationRecord,
  KEPT_GENERATIONS,
  type MoatEvent,
  type NetInterface,
  type WallTimeSource,
} from "../datapath/index.ts";
import type { EventsLostChoice } from "../config/index.ts";
import { lossReport, type Notice, type PacketCounts } from "../observe/index.ts";
import { RuleNameJournal, type RuleNameJournalPlace } from "./rule-name-journal.ts";

/** The parts of the datapath the event path reads. */
export interface EventSource {
  subscribe(onRecord: (record: Buffer) => void): unknown;
  /** The flow-only records' ring (closes of connections whose opening was not reported). */
  subscribeFlows?(onRecord: (record: Buffer) => void): unknown;
  counters(): PacketCounts;
  readonly contents: Pick<GenerationRecord, "rule" | "redirect" | "of">;
  /** The live generation (with `ruleNames`: the one the journal records). */
  readonly generation?: number;
}

/** Event times: by the daemon's kernel clock unless `clock` or a fixed `bootTimeMs` is given. */
export interface EventPathOptions extends WallTimeSource {
  source: EventSource;
  push: (event: MoatEvent) => void;
  /**
   * Every close record: a "closed" event (pushed too) or a "flow" one from the flow records'
   * ring (the close of a connection whose opening was not reported, never pushed).
   */
  closed?: (event: MoatEvent) => void;
  /** The full process facts of a socket's kernel owner. */
  process: (owner: KernelOwner) => ProcessFacts;
  /** The names the owner learned for a remote address (moat's DNS proxy); none: no names. */
  names?: (owner: KernelOwner, ip: string) => string[];
  /** This namespace's interfaces (read again when an event names an unknown one). */
  interfaces: () => NetInterface[];
  /** The name of an interface moat attached to (known before any event names it). */
  attachedName?: (ifindex: number) => string | undefined;
  /** Destroys the socket of a post-route blocked connection (null: not such an event). */
  destroy: (record: Buffer) => DestroyedSocket | null;
  log: (line: string) => void;
  lossReportMs?: number;
  namesRereadMs?: number;
  /** The running policy's `failure.events_lost` (default: report). */
  eventsLost?: () => EventsLostChoice;
  /** Sends a notice through every sink (the pipeline's notice()). */
  notice?: (notice: Notice) => void;
  /**
   * The rule names journal (rule-name-journal.ts): read at start for the previous daemon's
   * generations, written for the live one now and on every applied().
   */
  ruleNames?: RuleNameJournalPlace;
}

const LOSS_REPORT_MS = 5000;
/** An event naming an unknown interface reads the interface list again, at most this often. */
const NAMES_REREAD_MS = 1000;

export interface EventPath {
  /** A policy went live: its rule names are journaled for a next daemon. */
  applied(): void;
  /** Logs the losses since the last report, if any. */
  reportLoss(): void;
  /** Stops the loss timer and reports what was lost since the last report. */
  close(): void;
}

/** Interface names by ifindex; an interface made after start (a VPN) is named on first sight. */
export function interfaceNames(
  list: () => NetInterface[],
  rereadMs: number,
  attached: (ifindex: number) => string | undefined = () => undefined,
) {
  const names = new Map(list().map((n) => [n.ifindex, n.name]));
  let read = performance.now();
  return (ifindex: number): string | null => {
    const name = attached(ifindex);
    if (name) return name;
    if (!names.has(ifindex) && performance.now() - read > rereadMs) {
      read = performance.now();
      for (const n of list()) names.set(n.ifindex, n.name);
    }
    return names.get(ifindex) ?? null;
  };
}

/** The journal of the pins, holding the generations before this daemon's first (the live one). */
function openJournal(options: EventPathOptions): RuleNameJournal | null {
  const live = options.source.generation;
  if (!options.ruleNames || live === undefined) return null;
  const journal = RuleNameJournal.open(options.ruleNames, live, KEPT_GENERATIONS, options.log);
  journalLive(options.source, journal);
  return journal;
}

/** Journals the live generation's rules. */
function journalLive(source: EventSource, journal: RuleNameJournal | null): void {
  const generation = source.generation;
  const contents = generation === undefined ? null : source.contents.of(generation);
  if (journal && generation !== undefined && contents) journal.record(generation, contents);
}

export function startEventPath(options: EventPathOptions): EventPath {
  const { source, log } = options;
  const interfaceName = interfaceNames(
    options.interfaces,
    options.namesRereadMs ?? NAMES_REREAD_MS,
    options.attachedName,
  );
  // the owner of the record being decoded (decodeEvent hands it to `process`), for its names
  const decoding: { owner: KernelOwner | null } = { owner: null };
  // read before the first record: the ring holds what the pins queued while no daemon ran
  const journal = openJournal(options);
  const context = {
    clock: options.clock,
    bootTimeMs: options.bootTimeMs,
    rule: (index: number, generation: number) =>
      source.contents.rule(index, generation) ?? journal?.rule(index, generation),
    interfaceName,
    process: (o: KernelOwner) => {
      decoding.owner = o;
      return options.process(o);
    },
    redirect: (index: number, generation: number) =>
      source.contents.redirect(index, generation) ?? journal?.redirect(index, generation) ?? null,
  };
  /** A record as moat's event, with the names the owner's DNS lookups gave its remote. */
  const decode = (record: Buffer): MoatEvent => {
    decoding.owner = null;
    const event = decodeEvent(record, context);
    const owner = decoding.owner as KernelOwner | null; // set by decodeEvent's call of `process`
    const names = owner && options.names?.(owner, event.remote.ip);
    if (names?.length) event.remote.names = names;
    return event;
  };
  let destroyWarned = false;
  source.subscribe((record) => {
    // the post-route check dropped a SYN: the socket goes first, so connect() fails at once
    const destroyed = options.destroy(record);
    if (destroyed?.error && !destroyWarned) {
      destroyWarned = true;
      log(
        `warning: a socket blocked after routing could not be destroyed (its connect() will time out): ${destroyed.error.message}`,
      );
    }
    const event = decode(record);
    if (event.type === "closed") options.closed?.(event);
    if (event.type !== "flow") options.push(event);
  });
  if (options.closed) {
    const closed = options.closed;
    source.subscribeFlows?.((record) => closed(decode(record)));
  }

  const intervalMs = options.lossReportMs ?? LOSS_REPORT_MS;
  let last = source.counters();
  const reportLoss = () => {
    const now = source.counters();
    const line = lossReport(last, now);
    const lost = (now.eventLost?.packets ?? 0n) - (last.eventLost?.packets ?? 0n);
    last = now;
    if (line) log(line);
    if (lost > 0n && options.eventsLost?.() === "notify")
      options.notice?.({
        time: new Date().toISOString(),
        type: "events_lost",
        count: Number(lost),
        intervalMs,
      });
  };
  const timer = setInterval(reportLoss, intervalMs);
  timer.unref();
  return {
    applied: () => journalLive(source, journal),
    reportLoss,
    close() {
      clearInterval(timer);
      reportLoss();
    },
  };
}

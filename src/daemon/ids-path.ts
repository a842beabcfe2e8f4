// IDS signatures in the daemon (docs/policy.md, "ids"): the kernel copies the first bytes of each
// direction of a flow (bpf/include/ids.h); here they are put back in place per flow direction
// (ids-stream.ts) and matched against the live policy's signatures: a TCP direction as one stream,
// each UDP datagram alone. Each signature that matches a
// connection is one event (reason "ids", rule "ids:<sid>"), once per connection: "detected" for
// alert signatures and under ids.mode detect, "blocked" when a drop or reject signature cut the
// connection under ids.mode prevent. What keeps a direction from being read as its receiver reads
// it (another version of bytes already copied, more than one urgent byte, bytes that went by
// unread) is counted and, where a signature applies, one event (rule "ids:stream", sid 0): under
// prevent, where a drop or reject signature applies, it cuts the connection (fail closed).
// Flows are held while their connection may still send what is read (TCP and UDP apart, in
// bounded number). A negated content is judged absent once the bytes its range covers are here,
// or once no more will come: the direction's window is full, or the flow is let go.
import type { KernelOwner, ProcessFacts } from "../attribution/index.ts";
import type { IdsModel, IdsRule, PolicyModel } from "../config/index.ts";
import type { MoatSnapshot } from "../observe/index.ts";
import {
  decodeIdsCopy,
  IdsConst,
  idsConnection,
  kernelMonotonicNs,
  wallTimeMs,
  type IdsCopy,
  type IdsMatchFacts,
  type MoatEvent,
  type WallTimeSource,
} from "../datapath/index.ts";
import { IdsMatcher, type IdsBudget, type IdsStream } from "../policy/index.ts";
import { CopiedDatagrams, CopiedStream, type StreamTrouble } from "./ids-stream.ts";

export interface IdsSource {
  subscribeIds(onRecord: (record: Buffer) => void): unknown;
  /**
   * The connection table: whether a flow's connection is still open, and when it began.
   * Without it every connection counts as open and as begun while the path read.
   */
  conntrackMap?: { lookup(key: Buffer | null): Buffer | null };
}

/** Event times: by the daemon's kernel clock unless `clock` or a fixed `bootTimeMs` is given. */
export interface IdsPathOptions extends WallTimeSource {
  source: IdsSource;
  /** The live policy. */
  model: () => PolicyModel;
  push: (event: MoatEvent) => void;
  process: (owner: KernelOwner) => ProcessFacts;
  interfaceName?: (ifindex: number) => string | null;
  /** ids.mode prevent: cuts the connection; says whether it was. */
  cut: (copy: IdsCopy) => boolean;
  /** A monotonic clock in ms, for how long flows are held (default: performance.now). */
  now?: () => number;
  /** The kernel's clock in ns, the connection table's (default: kernelMonotonicNs). */
  monotonicNs?: () => bigint;
}

/** What the path did since start (status, /metrics, OpenTelemetry): the snapshot's `ids`. */
export type IdsCounters = NonNullable<MoatSnapshot["ids"]>;

export interface IdsPath {
  counters(): IdsCounters;
  /**
   * A policy went live: without signatures, the flows held are let go (no copy comes to prune
   * them any more, and each holds the signatures of the policy before).
   */
  applied(): void;
}

/**
 * Flows held at once, TCP and UDP apart: a flood of one cannot push the other out. Past these, the
 * flows past their copies go first, then the oldest; a flow pushed out whose connection sends
 * more is lost then (its next copy is not its first).
 */
export const IDS_HELD = { tcp: 32_768, udp: 8_192 };
/** How long after its last copy a flow is looked up in the connection table, to be let go. */
const FLOW_MS = 30_000;
const NO_BYTES = Buffer.alloc(0);

const TROUBLE: Record<StreamTrouble | "lost", string> = {
  overlap: "stream: another version of bytes already copied (a segment over them with other bytes)",
  urgent:
    "stream: more than one urgent byte (which ones the application reads depends on when it reads)",
  lost: "stream: bytes went by unread (a copy lost, or the flow let go while open)",
};

interface Direction {
  /** TCP: the bytes put back in place. */
  stream: CopiedStream;
  /** UDP: how far the datagrams copied went (each is matched alone, as it comes). */
  datagrams: CopiedDatagrams;
  /** A copy of it was read. */
  seen: boolean;
  /** Given up: bytes went by unread. */
  lost: boolean;
  /** The troubles reported, once each. */
  told: Set<StreamTrouble | "lost">;
  /**
   * While its window is not full: its last copy (without its bytes), to report a match found on
   * what arrived when the flow is let go.
   */
  open: IdsCopy | undefined;
}

interface Flow {
  /** By direction: 0 to the server. */
  dirs: [Direction, Direction];
  /** The flow's first copy read (without its bytes): its connection, to look up and to cut. */
  copy: IdsCopy;
  /** Begun before the path read: a direction whose start went by is not reported. */
  older: boolean;
  /** Signatures already reported for this connection. */
  fired: Set<number>;
  /** Each direction's tries left of each signature, for the matcher they were counted for. */
  budgets: [IdsBudget, IdsBudget] | undefined;
  matcher: IdsMatcher | undefined;
  /** Cut under prevent. */
  cut: boolean;
  last: number;
}

/** Flows of one protocol, the least recently copied first: those past their copies apart. */
class HeldFlows {
  readonly open = new Map<bigint, Flow>();
  readonly done = new Map<bigint, Flow>();
  readonly max: number;
  constructor(max: number) {
    this.max = max;
  }

  take(id: bigint): Flow | undefined {
    const flow = this.open.get(id) ?? this.done.get(id);
    this.open.delete(id);
    this.done.delete(id);
    return flow;
  }

  put(id: bigint, flow: Flow, done: boolean): void {
    (done ? this.done : this.open).set(id, flow);
  }

  /** The flow to push out when over the number held: one past its copies first. */
  *overflow(): Generator<Flow> {
    while (this.open.size + this.done.size > this.max) {
      const [id, flow] = this.done.entries().next().value ?? this.open.entries().next().value ?? [];
      if (id === undefined || !flow) return;
      this.take(id);
      yield flow;
    }
  }

  clear(): void {
    this.open.clear();
    this.done.clear();
  }
}

export function startIdsPath(options: IdsPathOptions): IdsPath {
  const held = { tcp: new HeldFlows(IDS_HELD.tcp), udp: new HeldFlows(IDS_HELD.udp) };
  const counters: IdsCounters = {
    copies: 0,
    gaps: 0,
    overlaps: 0,
    urgent: 0,
    detected: 0,
    blocked: 0,
  };
  const matchers = new WeakMap<IdsModel, IdsMatcher>();
  const matcherOf = (ids: IdsModel) => {
    let m = matchers.get(ids);
    if (!m) {
      m = new IdsMatcher(ids.signatures);
      matchers.set(ids, m);
    }
    return m;
  };
  const clock = options.now ?? (() => performance.now());
  const monotonicNs = options.monotonicNs ?? kernelMonotonicNs;
  const table = options.source.conntrackMap;
  /** Flows begun before this (the path's start, or signatures turned on again) went by unread. */
  let readingSinceNs = monotonicNs();
  /** Whether the live policy has signatures, as the last policy applied said. */
  let reading = true;

  // a flow that stops sending before its window fills is let go once its connection is gone,
  // even when no other copy comes
  setInterval(() => {
    const ids = options.model().ids;
    if (ids && ids.signatures.length > 0) sweep(clock(), ids);
  }, FLOW_MS).unref();

  options.source.subscribeIds((record) => {
    counters.copies++;
    const copy = decodeIdsCopy(record);
    const ids = options.model().ids;
    if (!ids || ids.signatures.length === 0) return;
    const flows = held[copy.protocol];
    const flow = flows.take(copy.connId) ?? newFlow(copy);
    flow.last = clock();
    read(flow, copy, ids);
    flows.put(copy.connId, flow, pastCopies(flow, ids));
    for (const gone of flows.overflow()) judgeLetGo(gone, ids);
  });

  function newFlow(copy: IdsCopy): Flow {
    const dir = (): Direction => ({
      stream: new CopiedStream(),
      datagrams: new CopiedDatagrams(),
      seen: false,
      lost: false,
      told: new Set(),
      open: undefined,
    });
    return {
      dirs: [dir(), dir()],
      copy: { ...copy, data: NO_BYTES },
      older: false,
      fired: new Set(),
      budgets: undefined,
      matcher: undefined,
      cut: false,
      last: 0,
    };
  }

  /** One copy of the flow: put in place, its troubles reported, the direction matched. */
  function read(flow: Flow, copy: IdsCopy, ids: IdsModel): void {
    const d = copy.toServer ? 0 : 1;
    const dir = flow.dirs[d];
    if (dir.lost) return;
    const missedStart = !dir.seen && !copy.first;
    dir.seen = true;
    if (missedStart && startedBefore(flow, copy)) {
      // a connection open before the path read: its start went by unread, through no one's doing
      dir.lost = true;
      counters.gaps++;
      return;
    }
    if (missedStart || copy.lost) {
      lose(flow, copy, ids);
      return;
    }
    if (copy.protocol === "udp") {
      // the datagram is whole: a negated content is judged on it now, nothing waits; the flow is
      // established once its other direction was seen
      dir.datagrams.add(copy.offset, copy.data);
      const view = { ...viewOf(copy), established: flow.dirs[copy.toServer ? 1 : 0].seen };
      judge(flow, copy, ids, true, [copy.data.toString("latin1")], view);
      return;
    }
    for (const trouble of dir.stream.add(copy.offset, copy.data, copy.urgent))
      troubled(flow, copy, ids, trouble);
    const final = dir.stream.final(windowOf(ids));
    dir.open = final ? undefined : { ...copy, data: NO_BYTES };
    judge(flow, copy, ids, final);
  }

  /** Whether the flow's connection began before the path read (after a restart, a reload). */
  function startedBefore(flow: Flow, copy: IdsCopy): boolean {
    if (!flow.older && table) {
      const connection = idsConnection(table, copy, monotonicNs());
      flow.older = connection !== null && connection.createdNs < readingSinceNs;
    }
    return flow.older;
  }

  /** A direction given up: bytes went by unread. */
  function lose(flow: Flow, copy: IdsCopy, ids: IdsModel): void {
    const dir = flow.dirs[copy.toServer ? 0 : 1];
    dir.lost = true;
    dir.open = undefined;
    counters.gaps++;
    troubled(flow, copy, ids, "lost");
  }

  function pastCopies(flow: Flow, ids: IdsModel): boolean {
    const window = windowOf(ids);
    const udp = flow.copy.protocol === "udp";
    return flow.dirs.every(
      (dir) => dir.lost || (udp ? dir.datagrams.final(window) : dir.stream.final(window)),
    );
  }

  /**
   * Lets go of the flows held FLOW_MS past their last copy whose connection the kernel copies no
   * more of (gone, closed, idle past its timeout, past its copies), each judged as it goes.
   * Without the connection table, a flow past its copies goes; the others wait to be pushed out.
   */
  function sweep(now: number, ids: IdsModel): void {
    const nowNs = monotonicNs();
    for (const flows of [held.tcp, held.udp])
      for (const map of [flows.done, flows.open])
        for (const [id, flow] of map) {
          if (now - flow.last < FLOW_MS) break;
          const copying = table
            ? (idsConnection(table, flow.copy, nowNs)?.copying ?? false)
            : map === flows.open;
          if (copying) continue;
          map.delete(id);
          judgeLetGo(flow, ids);
        }
  }

  /** A flow let go: its directions still open are judged on what arrived. */
  function judgeLetGo(flow: Flow, ids: IdsModel): void {
    // without a negated content, a match does not wait for bytes to come: nothing is left
    if (!matcherOf(ids).negates) return;
    for (const dir of flow.dirs) {
      if (dir.open) judge(flow, dir.open, ids, true);
      dir.open = undefined;
    }
  }

  /**
   * Matches the direction of `copy` (seen as `view`) on `versions` (default: each version of its
   * stream's bytes so far); reports new matches.
   */
  function judge(
    flow: Flow,
    copy: IdsCopy,
    ids: IdsModel,
    final: boolean,
    versions = flow.dirs[copy.toServer ? 0 : 1].stream.versions(),
    view = viewOf(copy),
  ): void {
    const d = copy.toServer ? 0 : 1;
    const matcher = matcherOf(ids);
    if (flow.matcher !== matcher || !flow.budgets) {
      flow.matcher = matcher;
      flow.budgets = [matcher.budget(), matcher.budget()];
    }
    for (const data of versions) {
      const matches = matcher.match({ ...view, data, final }, flow.budgets[d]);
      for (const rule of matches) {
        if (flow.fired.has(rule.sid)) continue;
        flow.fired.add(rule.sid);
        const prevent = rule.action !== "alert" && ids.mode === "prevent";
        counters[prevent ? "blocked" : "detected"]++;
        report(flow, copy, ids, factsOf(rule, rule.sid, rule.msg), `ids:${rule.sid}`);
      }
    }
  }

  /**
   * A trouble of the direction of `copy`, reported once where a signature watches it: cut under
   * prevent where a drop or reject signature does (the signature cannot be matched as the
   * receiver reads the bytes).
   */
  function troubled(flow: Flow, copy: IdsCopy, ids: IdsModel, trouble: StreamTrouble | "lost") {
    const dir = flow.dirs[copy.toServer ? 0 : 1];
    if (dir.told.has(trouble)) return;
    dir.told.add(trouble);
    if (trouble !== "lost") counters[trouble === "overlap" ? "overlaps" : "urgent"]++;
    const watching = matcherOf(ids).watching(viewOf(copy));
    const rule = watching.find((r) => r.action !== "alert") ?? watching[0];
    if (!rule) return;
    report(flow, copy, ids, factsOf(rule, 0, TROUBLE[trouble]), "ids:stream");
  }

  function report(
    flow: Flow,
    copy: IdsCopy,
    ids: IdsModel,
    facts: Omit<IdsMatchFacts, "flow" | "cut">,
    rule: string,
  ): void {
    const prevent = facts.action !== "alert" && ids.mode === "prevent";
    if (prevent && !flow.cut) flow.cut = options.cut(copy);
    const type = prevent ? "blocked" : "detected";
    options.push({
      time: new Date(wallTimeMs(Number(copy.tsNs / 1_000_000n), options)).toISOString(),
      type,
      mode: prevent ? "prevent" : "detect",
      rule,
      direction: copy.direction,
      protocol: copy.protocol,
      local: copy.local,
      remote: { ...copy.remote },
      interface: options.interfaceName?.(copy.ifindex) ?? null,
      process: copy.owner ? options.process(copy.owner) : null,
      layer7: null,
      connection: copy.connId === 0n ? null : copy.connId.toString(16),
      reason: "ids",
      verdict: type,
      hook: copy.hook,
      generation: copy.generation,
      ids: {
        ...facts,
        flow: copy.toServer ? "to_server" : "to_client",
        ...(prevent ? { cut: flow.cut } : {}),
      },
    });
  }

  return {
    counters: () => ({ ...counters }),
    applied() {
      if (!options.model().ids?.signatures.length) {
        held.tcp.clear();
        held.udp.clear();
        reading = false;
      } else if (!reading) {
        reading = true;
        readingSinceNs = monotonicNs();
      }
    },
  };
}

/** The bytes a direction's copies hold at most. */
const windowOf = (ids: IdsModel) => Math.min(ids.bytes, IdsConst.maxBytes);

/** A direction of the flow of `copy`, as a signature's header is matched on it. */
function viewOf(copy: IdsCopy): Omit<IdsStream, "data" | "final"> {
  const senderLocal = (copy.direction === "egress") === copy.toServer;
  return {
    protocol: copy.protocol,
    toServer: copy.toServer,
    sender: senderLocal ? copy.local : copy.remote,
    receiver: senderLocal ? copy.remote : copy.local,
    senderLocal,
  };
}

/** What an event says of the signature behind it, under `sid` and `msg` (0 and the trouble's). */
function factsOf(rule: IdsRule, sid: number, msg: string): Omit<IdsMatchFacts, "flow" | "cut"> {
  return {
    sid,
    ...(rule.rev !== undefined ? { rev: rule.rev } : {}),
    msg,
    ...(rule.classtype !== undefined ? { classtype: rule.classtype } : {}),
    action: rule.action,
    source: `${rule.pos.file}:${rule.pos.line}:${rule.pos.col}`,
  };
}

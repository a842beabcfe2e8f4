// IDS signatures in the daemon (docs/policy.md, "ids"): the kernel copies the first bytes of each
// direction of a flow (bpf/include/ids.h); here they are put back in order per flow direction and
// matched against the live policy's signatures. Each signature that matches a connection is one
// event (reason "ids", rule "ids:<sid>"), once per connection: "detected" for alert signatures
// and under ids.mode detect, "blocked" when a drop or reject signature cut the connection under
// ids.mode prevent. Flows are held briefly and in bounded number. A negated content is judged
// absent once the bytes its range covers are here, or once no more will come: the direction's
// window is full, or the flow is let go (held past FLOW_MS, or pushed out by newer flows).
import type { KernelOwner, ProcessFacts } from "../attribution/index.ts";
import type { IdsModel, IdsRule, PolicyModel } from "../config/index.ts";
import { IdsConst, decodeIdsCopy, type IdsCopy, type MoatEvent } from "../datapath/index.ts";
import { IdsMatcher, type IdsBudget } from "../policy/index.ts";

export interface IdsSource {
  subscribeIds(onRecord: (record: Buffer) => void): unknown;
}

export interface IdsPathOptions {
  source: IdsSource;
  /** The live policy. */
  model: () => PolicyModel;
  push: (event: MoatEvent) => void;
  process: (owner: KernelOwner) => ProcessFacts;
  interfaceName?: (ifindex: number) => string | null;
  /** ids.mode prevent: cuts the connection; says whether it was. */
  cut: (copy: IdsCopy) => boolean;
  /** Wall clock at boot, in ms (kernel timestamps are ns since boot). */
  bootTimeMs?: number;
  /** A monotonic clock in ms, for how long flows are held (default: performance.now). */
  now?: () => number;
}

/** What the path did since start (status, /metrics, OpenTelemetry). */
export interface IdsCounters {
  /** Copies read from the kernel. */
  copies: number;
  /** Flow directions given up: a copy was lost before them (a full ring), or out of place. */
  gaps: number;
  /** Signature matches reported, by outcome. */
  detected: number;
  blocked: number;
}

export interface IdsPath {
  counters(): IdsCounters;
  /**
   * A policy went live: without signatures, the flows held are let go (no copy comes to prune
   * them any more, and each holds the signatures of the policy before).
   */
  applied(): void;
}

/** Flow directions held at once, and for how long after their last copy. */
const MAX_FLOWS = 8192;
const FLOW_MS = 30_000;
const NO_BYTES = Buffer.alloc(0);

interface Flow {
  /** Bytes so far by direction (0: to the server), one char a byte. */
  data: [string, string];
  /** A direction given up (a gap). */
  broken: [boolean, boolean];
  /** Copies read by direction (the kernel copies at most IdsConst.maxPackets a direction). */
  copies: [number, number];
  /**
   * A direction whose window is not full yet: its last copy (without its bytes), to report a
   * match found on what arrived when the flow is let go.
   */
  open: [IdsCopy | undefined, IdsCopy | undefined];
  /** Signatures already reported for this connection. */
  fired: Set<number>;
  /** Each direction's tries left of each signature, for the matcher they were counted for. */
  budgets: [IdsBudget, IdsBudget] | undefined;
  matcher: IdsMatcher | undefined;
  last: number;
}

export function startIdsPath(options: IdsPathOptions): IdsPath {
  const bootTimeMs =
    options.bootTimeMs ?? Date.now() - Number(process.hrtime.bigint() / 1_000_000n);
  const flows = new Map<bigint, Flow>();
  const counters: IdsCounters = { copies: 0, gaps: 0, detected: 0, blocked: 0 };
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
  /** Lets go of the flows held too long or over the number held, each judged as it goes. */
  const prune = (now: number, ids: IdsModel) => {
    for (const [id, flow] of flows) {
      if (now - flow.last < FLOW_MS && flows.size < MAX_FLOWS) break;
      flows.delete(id);
      judgeLetGo(flow, ids);
    }
  };
  // a flow that stops sending before its window fills is let go within FLOW_MS of its last
  // copy, even when no other copy comes to prune it
  setInterval(() => {
    const ids = options.model().ids;
    if (ids && ids.signatures.length > 0) prune(clock(), ids);
  }, FLOW_MS).unref();

  options.source.subscribeIds((record) => {
    counters.copies++;
    const copy = decodeIdsCopy(record);
    const ids = options.model().ids;
    if (!ids || ids.signatures.length === 0) return;
    const now = clock();
    prune(now, ids);
    const flow = heldFlow(copy.connId, now);
    const d = copy.toServer ? 0 : 1;
    if (flow.broken[d]) return;
    if (copy.offset !== flow.data[d].length) {
      flow.broken[d] = true;
      flow.open[d] = undefined;
      counters.gaps++;
      return;
    }
    flow.data[d] += copy.data.toString("latin1");
    flow.copies[d]++;
    const final = windowFull(flow, d, ids);
    flow.open[d] = final ? undefined : { ...copy, data: NO_BYTES };
    judge(flow, copy, ids, final);
  });

  /** The flow of a copy, held as the most recently used (the oldest are let go first). */
  function heldFlow(connId: bigint, now: number): Flow {
    let flow = flows.get(connId);
    if (flow) flows.delete(connId);
    else
      flow = {
        data: ["", ""],
        broken: [false, false],
        copies: [0, 0],
        open: [undefined, undefined],
        fired: new Set(),
        last: now,
        budgets: undefined,
        matcher: undefined,
      };
    flows.set(connId, flow);
    flow.last = now;
    return flow;
  }

  /** No more bytes of this direction will come: the kernel copies no more of it. */
  function windowFull(flow: Flow, d: 0 | 1, ids: IdsModel): boolean {
    const bytes = Math.min(ids.bytes, IdsConst.maxBytes);
    return flow.data[d].length >= bytes || flow.copies[d] >= IdsConst.maxPackets;
  }

  /** A flow let go: its directions still open are judged on what arrived. */
  function judgeLetGo(flow: Flow, ids: IdsModel): void {
    // without a negated content, a match does not wait for bytes to come: nothing is left
    if (!matcherOf(ids).negates) return;
    for (const copy of flow.open) if (copy) judge(flow, copy, ids, true);
    flow.open = [undefined, undefined];
  }

  /** Matches the direction of `copy` on its bytes so far; reports each new match. */
  function judge(flow: Flow, copy: IdsCopy, ids: IdsModel, final: boolean): void {
    const d = copy.toServer ? 0 : 1;
    const senderLocal = (copy.direction === "egress") === copy.toServer;
    const matcher = matcherOf(ids);
    if (flow.matcher !== matcher || !flow.budgets) {
      flow.matcher = matcher;
      flow.budgets = [matcher.budget(), matcher.budget()];
    }
    const matches = matcher.match(
      {
        protocol: copy.protocol,
        toServer: copy.toServer,
        sender: senderLocal ? copy.local : copy.remote,
        receiver: senderLocal ? copy.remote : copy.local,
        senderLocal,
        data: flow.data[d],
        final,
      },
      flow.budgets[d],
    );
    for (const rule of matches) {
      if (flow.fired.has(rule.sid)) continue;
      flow.fired.add(rule.sid);
      report(copy, rule, ids);
    }
  }

  function report(copy: IdsCopy, rule: IdsRule, ids: IdsModel): void {
    const cuts = rule.action !== "alert";
    const prevent = cuts && ids.mode === "prevent";
    const cut = prevent ? options.cut(copy) : false;
    const type = prevent ? "blocked" : "detected";
    counters[type]++;
    options.push({
      time: new Date(bootTimeMs + Number(copy.tsNs / 1_000_000n)).toISOString(),
      type,
      mode: prevent ? "prevent" : "detect",
      rule: `ids:${rule.sid}`,
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
        sid: rule.sid,
        ...(rule.rev !== undefined ? { rev: rule.rev } : {}),
        msg: rule.msg,
        ...(rule.classtype !== undefined ? { classtype: rule.classtype } : {}),
        action: rule.action,
        flow: copy.toServer ? "to_server" : "to_client",
        source: `${rule.pos.file}:${rule.pos.line}:${rule.pos.col}`,
        ...(prevent ? { cut } : {}),
      },
    });
  }

  return {
    counters: () => ({ ...counters }),
    applied() {
      if (!options.model().ids?.signatures.length) flows.clear();
    },
  };
}

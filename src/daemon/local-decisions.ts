// The local decisions layer at run time: the store (decision-store.ts), the review queue
// (review-queue.ts, kept beside the store) fed by the event path, and every change carried out through the policy
// lifecycle's one install path (the running text compiled again with the decisions). A decision
// that expires is removed and the policy installed without it; the connections it let through
// that this policy blocks are cut, and the others go on, judged again by the kernel at their next
// packet (one the policy detects is reported then); a "once" decision goes when its connection's
// event names it (that connection goes on). Nothing is ever decided on a timeout: a queued
// connection waits for a person.
import {
  parseHostname,
  type LocalDecision,
  type ModeDecision,
  type PolicyModel,
} from "../config/index.ts";
import type { KernelOwner, ProcessFacts } from "../attribution/index.ts";
import {
  decodeOwner,
  protocolName,
  type ConntrackEntry,
  type Endpoint,
  type MoatEvent,
} from "../datapath/index.ts";
import type {
  DecisionBody,
  DecisionOutcome,
  DecisionsView,
  ReviewAnswer,
  ReviewView,
} from "../api/index.ts";
import { decisionIdOf, decisionRuleName, evaluate, storedFacts } from "../policy/index.ts";
import { DecisionError, type DecisionRequest, type DecisionStore } from "./decision-store.ts";
import { queuesEvent, ReviewQueue } from "./review-queue.ts";
import { wildcardOfName } from "./review-wildcard.ts";
import type { ReloadResult } from "./policy-lifecycle.ts";

export interface LocalDecisionsOptions {
  store: DecisionStore;
  /**
   * Installs the running policy again with the store's decisions (PolicyLifecycle);
   * `beforeSwap` runs once its tables are built, just before they go in.
   */
  install: (why: string, beforeSwap?: () => void) => Promise<ReloadResult>;
  /**
   * Installs the running policy again in the mode the store now holds (PolicyLifecycle.setMode);
   * `mode` undefined: the file's.
   */
  installMode?: (mode: ModeDecision["mode"] | undefined, who: string) => Promise<ReloadResult>;
  model: () => PolicyModel;
  /**
   * Cuts the open connections rule `name` let through that `judgement` says the policy without
   * it blocks; says how many sockets went. Called before the policy without the rule goes in:
   * it would re-judge them, and drop their resets.
   */
  cut: (rule: string, judgement: CutJudgement) => number;
  /** The events of the connections cut, once the policy without their decision is in. */
  report?: (event: MoatEvent) => void;
  audit: (line: string) => void;
  log: (line: string) => void;
  /** Where the review queue is kept (beside the decisions); absent or null: in memory only. */
  reviewPath?: string | null;
}

/** What the cut of a decision's connections asks of each of them. */
export interface CutJudgement {
  /**
   * The connection's event once cut (blocked, reason `rejudged`) when the policy without the
   * decision surely blocks it; null when it may let it through or only detect it: it goes on.
   */
  blocked(connection: MoatEvent): MoatEvent | null;
  /** A connection whose socket was destroyed, with its `blocked` event. */
  cut(event: MoatEvent): void;
}

/** Why an allow answer for a program known only by its name (comm) is refused. */
export const NAME_ONLY_ALLOW =
  "this connection's program is known only by its name, which any process can take: an allow would let every program on this host through; allow the destination for every program with 'moat decisions add', or add a rule naming the executable";

/** setTimeout's limit: later expiries are checked again then. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export class LocalDecisions {
  readonly queue: ReviewQueue;
  private readonly options: LocalDecisionsOptions;
  private timer: NodeJS.Timeout | null = null;
  private closed = false;

  constructor(options: LocalDecisionsOptions) {
    this.options = options;
    this.queue = new ReviewQueue({ path: options.reviewPath ?? null, log: options.log });
    this.schedule();
  }

  /** The decisions every compile uses now. */
  current(): LocalDecision[] {
    return this.options.store.list();
  }

  view(): DecisionsView {
    const mode = this.options.store.mode();
    return { path: this.options.store.path, decisions: this.current(), ...(mode ? { mode } : {}) };
  }

  /**
   * `moat mode`: the policy's mode decided here, kept with the decisions (the policy file is not
   * rewritten); undefined: the file's mode again. Undone when the policy in that mode is refused.
   */
  async setMode(mode: ModeDecision["mode"] | undefined, who: string): Promise<ReloadResult> {
    const { store, installMode } = this.options;
    if (!installMode) return { ok: false, generation: 0, errors: ["no mode switch here"] };
    const before = store.mode();
    store.setMode(mode, who);
    const result = await installMode(mode, who);
    if (!result.ok) store.restoreMode(before);
    return result;
  }

  review(): ReviewView {
    return this.queue.view();
  }

  /** Every event passes here: unknown connections are queued, used "once" decisions go. */
  observe(event: MoatEvent): void {
    if (queuesEvent(event, this.options.model())) this.queue.add(event);
    const id = decisionIdOf(event.rule);
    if (id && event.type === event.verdict && event.reason !== "rejudged") {
      const d = this.options.store.get(id);
      if (d?.lifetime === "once")
        // a decisions file that cannot be written now (a full disk) leaves it for its expiry
        this.removeBy(id, "moat (used once)", false).catch((err: unknown) =>
          this.options.log(`decision ${id}: ${(err as Error).message}`),
        );
    }
  }

  add(body: DecisionBody, who: string): Promise<DecisionOutcome> {
    return this.make({ ...body, by: who }, who);
  }

  remove(id: string, who: string): Promise<DecisionOutcome> {
    return this.removeBy(id, who, true);
  }

  /** A person's answer to a queued connection: a decision made from it; the entry leaves. */
  async answer(a: ReviewAnswer, who: string): Promise<DecisionOutcome> {
    const entry = this.queue.get(a.id);
    if (!entry) return { ok: false, errors: [`no review queue entry ${a.id}`] };
    // a decision names a program by its executable: without one, an allow would let every
    // program on the host through (a block for every program is taken: it lets nothing more in)
    if (
      a.action === "allow" &&
      entry.direction === "egress" &&
      entry.process &&
      !entry.process.path
    )
      return { ok: false, errors: [NAME_ONLY_ALLOW] };
    const remote = remoteOf(entry.remote, a);
    if (!remote.ok) return { ok: false, errors: [remote.error] };
    const protocol = entry.protocol;
    const body: DecisionRequest = {
      action: a.action,
      direction: entry.direction,
      remote: remote.value,
      ...(protocol === "tcp" || protocol === "udp" || protocol === "icmp" || protocol === "icmpv6"
        ? { protocol }
        : {}),
      ...(entry.port !== undefined ? { port: entry.port } : {}),
      // the identity the connection came from, when a socket hook saw it: the program and the
      // user running it (another user's run of the same program was not what was reviewed)
      ...(entry.process?.path && entry.direction === "egress"
        ? { process: { path: entry.process.path, user: entry.process.user } }
        : {}),
      lifetime: a.lifetime,
      by: who,
      review: entry.id,
    };
    const outcome = await this.make(body, who);
    if (outcome.ok) this.queue.remove(entry.id);
    return outcome;
  }

  close(): void {
    this.closed = true;
    this.queue.close();
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private async make(request: DecisionRequest, who: string): Promise<DecisionOutcome> {
    const { store, install, audit } = this.options;
    let made: ReturnType<DecisionStore["add"]>;
    try {
      made = store.add(request);
    } catch (err) {
      if (err instanceof DecisionError) return { ok: false, errors: [err.message] };
      throw err;
    }
    const d = made.decision;
    const what = `decision ${d.id} (${d.action} ${d.direction} ${d.remote}${d.port ? ` port ${d.port}` : ""}, ${d.lifetime}) added by ${who}`;
    // stored, it is enforced by the next daemon whatever happens to this install: audited now
    audit(`DECISION STORED ${what}`);
    const result = await install(what);
    if (!result.ok) {
      // the policy with it cannot be compiled (a name the datapath cannot judge here): undone
      store.remove(d.id);
      if (made.replaced) store.add(made.replaced);
      audit(`DECISION REFUSED ${what}: ${result.errors.join("; ")}`);
      return { ok: false, errors: result.errors };
    }
    this.schedule();
    return { ok: true, decision: d, generation: result.generation };
  }

  private async removeBy(id: string, who: string, cut: boolean): Promise<DecisionOutcome> {
    const d = this.options.store.remove(id);
    if (!d) return { ok: false, errors: [`no decision ${id}`] };
    this.options.audit(`DECISION STORED decision ${id} removed by ${who}`);
    const cutEvents: MoatEvent[] = [];
    const result = await this.options.install(`decision ${id} removed by ${who}`, () => {
      if (cut) cutEvents.push(...this.cutFor(d, "removed"));
    });
    this.reportCut(cutEvents, result.generation);
    if (!result.ok) return { ok: false, errors: result.errors };
    this.schedule();
    return { ok: true, decision: d, generation: result.generation };
  }

  /** Removes what expired, installs the policy without it, cuts what that policy blocks. */
  private async expire(): Promise<void> {
    this.timer = null;
    const gone = this.options.store.takeExpired();
    if (gone.length > 0) {
      const ids = gone.map((d) => d.id).join(", ");
      const cutEvents: MoatEvent[] = [];
      const result = await this.options.install(`decision ${ids} expired`, () => {
        for (const d of gone) cutEvents.push(...this.cutFor(d, "expired"));
      });
      this.reportCut(cutEvents, result.generation);
    }
    this.schedule();
  }

  /**
   * Cuts the connections `d` let through that the policy without it (the store's decisions now)
   * blocks; returns their events. The others go on: the kernel judges them again at their next
   * packet, and reports one that policy detects.
   */
  private cutFor(d: LocalDecision, why: string): MoatEvent[] {
    // "once" lets its one connection go on
    if (d.lifetime === "once" || d.action !== "allow") return [];
    const without: PolicyModel = { ...this.options.model(), decisions: this.current() };
    const cut: MoatEvent[] = [];
    let going = 0;
    const n = this.options.cut(decisionRuleName(d.id), {
      blocked: (connection) => {
        const event = blockedWithout(without, connection);
        if (!event) going++;
        return event;
      },
      cut: (event) => cut.push(event),
    });
    const on = going > 0 ? `; ${going} go on (the policy without it does not block them)` : "";
    this.options.log(`decision ${d.id} ${why}: ${n} connection(s) it allowed cut${on}`);
    return cut;
  }

  /** The cut connections' events, judged by the policy that went in as `generation`. */
  private reportCut(events: MoatEvent[], generation: number): void {
    for (const event of events) this.options.report?.({ ...event, generation });
  }

  private schedule(): void {
    if (this.closed) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const next = this.options.store.nextExpiry();
    if (next === null) return;
    const wait = Math.min(Math.max(0, next - Date.now()), MAX_TIMER_MS);
    this.timer = setTimeout(() => void this.expire(), wait);
    this.timer.unref();
  }
}

/**
 * `connection`'s event once cut, blocked by `model` (reason `rejudged`, as the kernel reports a
 * connection a new policy blocks), when every decision `model` may come to on what the event
 * says blocks it; null when one may let it through or only detect it.
 */
export function blockedWithout(model: PolicyModel, connection: MoatEvent): MoatEvent | null {
  const facts = storedFacts(connection);
  if (facts === "dns") return null;
  const e = evaluate(model, facts);
  const possible = e.verdict === "deferred" ? e.possible : [e];
  const d = possible[0];
  if (!d || possible.some((p) => p.verdict !== "blocked")) return null;
  return {
    ...connection,
    type: "blocked",
    verdict: "blocked",
    rule: d.rule,
    mode: d.mode,
    reason: "rejudged",
  };
}

/** How the daemon reads what a conntrack entry holds by number. */
export interface EntryLookups {
  rule: (index: number, generation: number) => string | undefined;
  interfaceName: (ifindex: number) => string | null;
  ingressHook: (ifindex: number) => "xdp" | "tc";
  process: (owner: KernelOwner) => ProcessFacts;
  names: (owner: KernelOwner, ip: string) => string[];
}

/** An open connection a decision let through, as an event of it shows it now. */
export function decidedConnection(e: ConntrackEntry, at: EntryLookups): MoatEvent {
  const owner = decodeOwner(e.value.owner);
  const remote: Endpoint = { ...e.remote };
  const names = owner ? at.names(owner, remote.ip) : [];
  if (names.length > 0) remote.names = names;
  return {
    time: new Date().toISOString(),
    type: e.verdict,
    mode: e.mode,
    rule: at.rule(e.rule, e.generation) ?? `#${e.rule}`,
    direction: e.direction,
    protocol: protocolName(e.protocol),
    local: { ...e.local },
    remote,
    interface: e.ifindex ? at.interfaceName(e.ifindex) : null,
    process: owner ? at.process(owner) : null,
    layer7: null,
    connection: e.id.toString(16),
    reason: "new",
    verdict: e.verdict,
    hook: e.direction === "egress" ? "tc" : at.ingressHook(e.ifindex),
    generation: e.generation,
  };
}

/** The decision's remote for a review answer's scope. */
function remoteOf(
  remote: { ip: string; names?: string[] },
  a: ReviewAnswer,
): { ok: true; value: string } | { ok: false; error: string } {
  if (a.scope === "host") return { ok: true, value: remote.ip };
  const name = a.name ?? remote.names?.[0];
  if (!name)
    return {
      ok: false,
      error: `${remote.ip} has no name moat learned: decide by host, or give the ${a.scope === "domain" ? "name" : "pattern"}`,
    };
  if (a.scope === "domain") {
    const parsed = parseHostname(name);
    if (!parsed.ok || parsed.value.wildcard) return { ok: false, error: `'${name}' is not a name` };
    return { ok: true, value: parsed.value.name };
  }
  // wildcard: a pattern as given, or every name below the learned name's parent, never above
  // its registrable domain
  if (a.name) {
    const parsed = parseHostname(a.name);
    if (!parsed.ok || !parsed.value.wildcard)
      return { ok: false, error: `'${a.name}' is not a name pattern (*.name or **.name)` };
    return { ok: true, value: a.name };
  }
  const parsed = parseHostname(name);
  if (!parsed.ok || parsed.value.wildcard) return { ok: false, error: `'${name}' is not a name` };
  return wildcardOfName(parsed.value.name);
}

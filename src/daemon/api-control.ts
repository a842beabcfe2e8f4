// What the API asks of the daemon (ApiControl), answered by the daemon's parts: the policy
// lifecycle for the policy and its changes, the datapath and attribution for a redirected
// client's original destination, the pipeline for live subscribers, the store for history.
import type { Attribution } from "../attribution/index.ts";
import type { ApiControl, RuleView, SetView } from "../api/index.ts";
import type { PolicyModel } from "../config/index.ts";
import type { Datapath } from "../datapath/index.ts";
import {
  recordChange,
  type AuditSink,
  type EventPipeline,
  type HistoryWorker,
  type SnapshotSource,
} from "../observe/index.ts";
import type { PolicyLifecycle } from "./policy-lifecycle.ts";
import type { LocalDecisions } from "./local-decisions.ts";
import type { DynamicSets } from "./dynamic-sets.ts";
import type { Feeds } from "./feed-fetch.ts";
import { historyReplayer } from "./history-replay.ts";
import { historySuggester } from "./history-suggest.ts";
import { validatePolicyText } from "./policy-text.ts";
import { sshLoginKeys } from "./ssh-logins.ts";
import type { AnomalyPath } from "./anomaly-path.ts";

export interface ControlParts {
  policyPath: string;
  /** Dynamic sets and URL feeds (absent: GET /v1/sets lists none, changes are refused). */
  sets?: { dynamic: DynamicSets; feeds: Feeds };
  policy: PolicyLifecycle;
  datapath: Pick<Datapath, "generation" | "originalOf" | "redirectOf">;
  attribution: Pick<Attribution, "attribute">;
  pipeline: Pick<EventPipeline, "add" | "remove" | "push">;
  history: HistoryWorker | null;
  snapshot: SnapshotSource;
  audit: Pick<AuditSink, "note">;
  anomalies?: Pick<AnomalyPath, "list" | "accept">;
  /** moat's local decisions and review queue. */
  decisions: LocalDecisions;
  log: (line: string) => void;
}

export function apiControl(parts: ControlParts): ApiControl {
  const { policy, datapath, pipeline, log } = parts;
  const historyPath = parts.history?.path;
  const source = {
    historyPath: historyPath && historyPath !== ":memory:" ? historyPath : null,
    ...(parts.history ? { ready: parts.history.ready } : {}),
    policyPath: parts.policyPath,
    runningText: () => policy.active.text,
  };
  const replay = historyReplayer(source);
  return {
    snapshot: parts.snapshot,
    policy: () => ({
      path: parts.policyPath,
      text: policy.active.text,
      hash: policy.active.hash,
      generation: datapath.generation,
      mode: policy.active.model.mode,
      ...(policy.onTrial ? { trial: policy.onTrial } : {}),
      rules: ruleViews(policy.active.model),
    }),
    validate: (text) => validatePolicyText(text, parts.policyPath),
    apply: (text, who, options) => policy.apply(text, who, options),
    confirm: (who) => policy.confirm(who),
    // a local decision, kept with the others (the policy file is not rewritten)
    setMode: (mode, who) => parts.decisions.setMode(mode === "policy" ? undefined : mode, who),
    queryHistory: (query) => parts.history?.query(query) ?? null,
    replay,
    suggest: historySuggester(source),
    flowStats: (query) => parts.history?.flowStats(query) ?? null,
    ...(parts.anomalies
      ? {
          anomalies: parts.anomalies.list,
          acceptAnomaly: parts.anomalies.accept,
        }
      : {}),
    original: (peer, protocol) => {
      const o = datapath.originalOf(peer, protocol);
      if (!o) return null;
      const p = o.owner ? parts.attribution.attribute(o.owner) : null;
      return {
        original: o.original,
        protocol: o.protocol,
        redirect: datapath.redirectOf(o.redirect, o.generation)?.name ?? `#${o.redirect}`,
        target: o.target,
        process: p ? { pid: p.pid, name: p.name, user: p.user } : null,
      };
    },
    sshKeys: (login) =>
      sshLoginKeys(
        {
          model: () => policy.active.model,
          generation: () => datapath.generation,
          push: (event) => pipeline.push(event),
        },
        login,
      ),
    decisions: () => parts.decisions.view(),
    addDecision: (body, who) => parts.decisions.add(body, who),
    removeDecision: (id, who) => parts.decisions.remove(id, who),
    review: () => parts.decisions.review(),
    answerReview: (answer, who) => parts.decisions.answer(answer, who),
    sets: () => [
      ...(parts.sets?.dynamic.list() ?? []),
      ...feedViews(policy.active.model, parts.sets?.feeds),
    ],
    changeSet: (change, who) =>
      parts.sets
        ? parts.sets.dynamic.change(change, who)
        : Promise.resolve({
            ok: false,
            status: 404,
            code: "ENOSET",
            message: "this daemon keeps no dynamic sets",
          }),
    addSink: (sink, sinkOptions) => pipeline.add(sink, sinkOptions),
    removeSink: (sink) => pipeline.remove(sink),
    // a change the API refused (a token without the scope): audited and logged
    audit: (line) => recordChange(parts.audit, log, line),
    log,
  };
}

/** Every feed of the running policy, with its last fetch (URL feeds). */
function feedViews(model: PolicyModel, feeds: Feeds | undefined): SetView[] {
  const views: SetView[] = [];
  for (const set of model.sets.values()) {
    const origin = set.origin;
    if (origin?.kind !== "feed") continue;
    views.push({
      name: set.name,
      kind: "feed",
      count: set.entries.length,
      feed: {
        ...(origin.url ? { url: origin.url } : {}),
        ...(origin.category !== undefined ? { category: origin.category } : {}),
        ...(origin.confidence !== undefined ? { confidence: origin.confidence } : {}),
        ...feeds?.status(set.name),
        refused: origin.refused ?? 0,
      },
    });
  }
  return views;
}

const verdictOf = (action: "allow" | "block", mode: "detect" | "prevent"): RuleView["verdict"] =>
  action === "allow" ? "allowed" : mode === "prevent" ? "blocked" : "detected";

/** Each rule's action, mode and verdict, then the defaults under the names the counters use. */
export function ruleViews(model: PolicyModel): RuleView[] {
  const views: RuleView[] = model.rules.map((r) => ({
    name: r.name,
    action: r.action,
    mode: r.mode,
    verdict: verdictOf(r.action, r.mode),
    line: r.pos.line,
  }));
  for (const direction of ["ingress", "egress"] as const) {
    const action = model.defaults[direction];
    views.push({
      name: `defaults.${direction}`,
      action,
      mode: model.mode,
      verdict: verdictOf(action, model.mode),
    });
  }
  return views;
}

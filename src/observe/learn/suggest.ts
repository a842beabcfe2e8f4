// `moat suggest` and GET /v1/policy/suggest: one function each for proposing least-privilege
// rules and for promoting them, both from the roll-ups (learn-rows.ts) and the policy's own
// text, both answering the new text, the unified diff against the old one and the reasons.
// Nothing is applied here: the user reviews the diff and runs `moat policy apply`.
import type { PolicyModel } from "../../config/model.ts";
import { unifiedDiff } from "../../policy/line-diff.ts";
import { withPromoted, withProposedRules } from "./edit.ts";
import { GENERALISE_DEFAULTS } from "./generalise.ts";
import type { IdentityDay, LearnInput, LearnOverflow } from "./learn-rows.ts";
import { promotions, type PromotionCheck } from "./promote.ts";
import { noneNotProposed, propose, type NotProposed, type ProposeOptions } from "./propose.ts";

const DAY = 86_400_000;

/** The settings a suggestion used (each a flag of `moat suggest`). */
export interface SuggestSettings {
  /** The window learnt from, ISO times. */
  since: string;
  until: string;
  /** A flow is learnt from once first seen at least this many seconds ago (default 2 days). */
  stableSeconds: number;
  /** Sibling names that make a wildcard (default 3). */
  siblings: number;
  /** Addresses in one /24 (IPv6 /64) that make the prefix (default 8). */
  addresses: number;
  /** Clean days in a row before --promote makes a rule prevent (default 7). */
  cleanDays: number;
}

export const SUGGEST_DEFAULTS = {
  stableSeconds: 2 * 86_400,
  siblings: GENERALISE_DEFAULTS.siblings,
  addresses: GENERALISE_DEFAULTS.addresses,
  cleanDays: 7,
} as const;

/** A proposed rule as the answer lists it. */
export interface SuggestedRuleView {
  name: string;
  direction: string;
  action: "allow" | "block";
  /** `exe`: the executable's path; with `nameOnly`, the process's name (comm), never a path. */
  identity: { exe: string; nameOnly: boolean; user: number | null; container: string };
  remote: string[];
  ports: (number | string)[];
  protocol: string;
  hits: number;
  firstSeen: string | null;
  lastSeen: string | null;
  processes: number;
  because: string[];
}

export interface Suggestion {
  /** What was asked: new rules, or promotion of the ones proposed before. */
  kind: "propose" | "promote";
  settings: SuggestSettings;
  /** The roll-up level read. */
  resolution: string;
  /** The policy's new text (the old one when nothing changes). */
  text: string;
  /** `--- a/FILE` / `+++ b/FILE` and its hunks; empty when nothing changes. */
  diff: string[];
  rules: SuggestedRuleView[];
  notProposed: NotProposed;
  overflow: LearnOverflow;
  /** --promote: each proposed rule still in detect mode, its clean days, whether promoted. */
  promotions: PromotionCheck[];
}

export interface SuggestRequest {
  /** The policy file's text and its accepted model. */
  text: string;
  model: PolicyModel;
  /** The name the diff gives the file. */
  fileName: string;
  now: number;
  since: number;
  stableSeconds?: number;
  siblings?: number;
  addresses?: number;
  cleanDays?: number;
}

function settingsOf(r: SuggestRequest): SuggestSettings {
  return {
    since: new Date(r.since).toISOString(),
    until: new Date(r.now).toISOString(),
    stableSeconds: r.stableSeconds ?? SUGGEST_DEFAULTS.stableSeconds,
    siblings: r.siblings ?? SUGGEST_DEFAULTS.siblings,
    addresses: r.addresses ?? SUGGEST_DEFAULTS.addresses,
    cleanDays: r.cleanDays ?? SUGGEST_DEFAULTS.cleanDays,
  };
}

const iso = (ms: number) => (ms > 0 && Number.isFinite(ms) ? new Date(ms).toISOString() : null);

const diffOf = (r: SuggestRequest, text: string) =>
  unifiedDiff(r.text, text, `a/${r.fileName}`, `b/${r.fileName}`);

/** Least-privilege rules for what the defaults decided in the window, in detect mode. */
export function suggestPolicy(r: SuggestRequest, learn: LearnInput): Suggestion {
  const settings = settingsOf(r);
  const options: ProposeOptions = {
    now: r.now,
    stableMs: settings.stableSeconds * 1000,
    siblings: settings.siblings,
    addresses: settings.addresses,
  };
  const proposal = propose(r.model, learn.rows, options);
  const text = withProposedRules(r.text, proposal.rules, r.now);
  return {
    kind: "propose",
    settings,
    resolution: learn.resolution,
    text,
    diff: diffOf(r, text),
    rules: proposal.rules.map((p) => {
      const l3 = p.yaml.layer3 as { remote?: string[] } | undefined;
      const l4 = p.yaml.layer4 as { protocol?: unknown; port?: (number | string)[] } | undefined;
      return {
        name: p.name,
        direction: p.direction,
        action: p.action,
        identity: {
          exe: p.identity.exe,
          nameOnly: p.identity.nameOnly,
          user: p.identity.user < 0 ? null : p.identity.user,
          container: p.identity.container,
        },
        remote: l3?.remote ?? [],
        ports: l4?.port ?? [],
        protocol: String(l4?.protocol ?? "any"),
        hits: p.hits,
        firstSeen: iso(p.firstMs),
        lastSeen: iso(p.lastMs),
        processes: p.processes,
        because: p.because,
      };
    }),
    notProposed: proposal.notProposed,
    overflow: learn.overflow,
    promotions: [],
  };
}

/** The days --promote reads back from `now`: enough for the clean days asked. */
export const promoteSince = (now: number, cleanDays: number, since: number): number =>
  Math.min(since, now - (cleanDays + 1) * DAY);

/** Proposed rules in detect mode whose identity had the clean days asked, made prevent. */
export function promotePolicy(
  r: SuggestRequest,
  days: readonly IdentityDay[],
  resolution: string,
  /** Identity days past the read caps: any of them may be unclean, so nothing is promoted. */
  overflow = 0,
): Suggestion {
  const settings = settingsOf(r);
  const found = promotions(r.text, r.model, days, {
    now: r.now,
    cleanDays: settings.cleanDays,
  });
  const checks = overflow > 0 ? found.checks.map((c) => ({ ...c, promoted: false })) : found.checks;
  const text = withPromoted(r.text, overflow > 0 ? new Map() : found.promote);
  return {
    kind: "promote",
    settings,
    resolution,
    text,
    diff: diffOf(r, text),
    rules: [],
    notProposed: noneNotProposed(),
    overflow: { rows: overflow, connections: 0, rolledUp: 0 },
    promotions: checks,
  };
}

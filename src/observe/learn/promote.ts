// Promotion: a proposed rule still in detect mode becomes prevent once its identity has had N
// clean days in a row, counted back from today over the days after the one it was proposed on
// (its `moat suggest DATE:` comment): days on which the identity made connections and none of
// them was blocked or detected (by any rule or the defaults). Days without any connection
// neither count nor break the run. The first unclean day ends it: whatever the identity needed
// that the proposed rules do not allow must be looked at before they enforce. Days before the
// rule existed say nothing of it (with an allowing default every one of them is clean).
import type { PolicyModel, Rule } from "../../config/model.ts";
import { suggestedRules } from "./edit.ts";
import { identityKey, type IdentityDay } from "./learn-rows.ts";
import { nameKey, pathsByName } from "./identity.ts";

export interface PromoteOptions {
  now: number;
  /** Clean days in a row a rule's identity needs (default 7). */
  cleanDays: number;
}

export interface PromotionCheck {
  name: string;
  /** The day it was proposed (YYYY-MM-DD); null when its comment is gone (never promoted). */
  proposed: string | null;
  /** Clean days in a row after that day, counted back from the newest day. */
  cleanDays: number;
  promoted: boolean;
}

/** The identity a rule's `process` section names, as the roll-ups key it. */
function ruleIdentity(rule: Rule): {
  exe: string;
  nameOnly: boolean;
  user: number;
  container: string;
} {
  const p = rule.process;
  const user = p?.user?.[0];
  const path = p?.path?.[0];
  return {
    exe: path ?? p?.name?.[0] ?? "",
    nameOnly: path === undefined && p?.name?.[0] !== undefined,
    user: typeof user === "number" ? user : -1,
    container: p?.container?.name ?? p?.container?.id ?? "",
  };
}

type Day = { connections: number; unclean: number };

/** Each identity's days, newest first, from days in any order. */
function daysByIdentity(days: readonly IdentityDay[]): Map<string, [number, Day][]> {
  // a day's connections keyed by comm count for the executable that name stands for (one a
  // comm with a slash never stands for: promote by the days of the path itself)
  const withPath = pathsByName(days);
  // identity -> day -> connections and unclean ones
  const byIdentity = new Map<string, Map<number, { connections: number; unclean: number }>>();
  for (const d of days) {
    const joined = d.nameOnly ? withPath.get(nameKey(d)) : undefined;
    const key = identityKey({ ...d, exe: joined ?? d.exe, nameOnly: d.nameOnly && !joined });
    const perDay =
      byIdentity.get(key) ?? new Map<number, { connections: number; unclean: number }>();
    byIdentity.set(key, perDay);
    const day = perDay.get(d.dayMs) ?? { connections: 0, unclean: 0 };
    perDay.set(d.dayMs, {
      connections: day.connections + d.connections,
      unclean: day.unclean + d.unclean,
    });
  }
  const out = new Map<string, [number, Day][]>();
  for (const [key, perDay] of byIdentity)
    out.set(
      key,
      [...perDay].sort((a, b) => b[0] - a[0]),
    );
  return out;
}

/** Clean days in a row, newest first, among the days after `afterDay`. */
function cleanRun(days: readonly [number, Day][], afterDay: number): number {
  let run = 0;
  for (const [dayMs, d] of days) {
    if (dayMs <= afterDay) break;
    if (d.unclean > 0) break;
    if (d.connections > 0) run++;
  }
  return run;
}

/** Which proposed rules in detect mode have earned prevent, and why, by name. */
export function promotions(
  text: string,
  model: PolicyModel,
  days: readonly IdentityDay[],
  options: PromoteOptions,
): { checks: PromotionCheck[]; promote: Map<string, string> } {
  const byIdentity = daysByIdentity(days);
  const rules = new Map(model.rules.map((r) => [r.name, r]));
  const checks: PromotionCheck[] = [];
  const promote = new Map<string, string>();
  const today = new Date(options.now).toISOString().slice(0, 10);
  for (const s of suggestedRules(text)) {
    const rule = rules.get(s.name);
    if (!rule || s.mode !== "detect") continue;
    const history = byIdentity.get(identityKey(ruleIdentity(rule))) ?? [];
    const proposed = s.proposedMs;
    const cleanDays = proposed === undefined ? 0 : cleanRun(history, proposed);
    const promoted = proposed !== undefined && cleanDays >= options.cleanDays;
    checks.push({
      name: s.name,
      proposed: proposed === undefined ? null : new Date(proposed).toISOString().slice(0, 10),
      cleanDays,
      promoted,
    });
    if (promoted)
      promote.set(
        s.name,
        `moat suggest --promote ${today}: ${cleanDays} clean days since it was proposed (connections, none blocked or detected)`,
      );
  }
  return { checks, promote };
}

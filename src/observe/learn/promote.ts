// Promotion: a proposed rule still in detect mode becomes prevent once its identity has had N
// clean days in a row, counted back from today: days on which the identity made connections
// and none of them was blocked or detected (by any rule or the defaults). Days without any
// connection neither count nor break the run. The first unclean day ends it: whatever the
// identity needed that the proposed rules do not allow must be looked at before they enforce.
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
  /** Clean days in a row, counted back from the newest day. */
  cleanDays: number;
  promoted: boolean;
}

/** The identity a rule's `process` section names, as the roll-ups key it. */
function ruleIdentity(rule: Rule): { exe: string; user: number; container: string } {
  const p = rule.process;
  const user = p?.user?.[0];
  return {
    exe: p?.path?.[0] ?? p?.name?.[0] ?? "",
    user: typeof user === "number" ? user : -1,
    container: p?.container?.name ?? p?.container?.id ?? "",
  };
}

/** Clean days in a row per identity, newest first, from days in any order. */
function cleanRuns(days: readonly IdentityDay[]): Map<string, number> {
  // a day's connections keyed by comm count for the executable that name stands for
  const withPath = pathsByName(days);
  // identity -> day -> connections and unclean ones
  const byIdentity = new Map<string, Map<number, { connections: number; unclean: number }>>();
  for (const d of days) {
    const exe = (!d.exe.startsWith("/") && withPath.get(nameKey(d))) || d.exe;
    const key = identityKey({ ...d, exe });
    const perDay =
      byIdentity.get(key) ?? new Map<number, { connections: number; unclean: number }>();
    byIdentity.set(key, perDay);
    const day = perDay.get(d.dayMs) ?? { connections: 0, unclean: 0 };
    perDay.set(d.dayMs, {
      connections: day.connections + d.connections,
      unclean: day.unclean + d.unclean,
    });
  }
  const out = new Map<string, number>();
  for (const [key, perDay] of byIdentity) {
    let run = 0;
    for (const [, d] of [...perDay].sort((a, b) => b[0] - a[0])) {
      if (d.unclean > 0) break;
      if (d.connections > 0) run++;
    }
    out.set(key, run);
  }
  return out;
}

/** Which proposed rules in detect mode have earned prevent, and why, by name. */
export function promotions(
  text: string,
  model: PolicyModel,
  days: readonly IdentityDay[],
  options: PromoteOptions,
): { checks: PromotionCheck[]; promote: Map<string, string> } {
  const runs = cleanRuns(days);
  const rules = new Map(model.rules.map((r) => [r.name, r]));
  const checks: PromotionCheck[] = [];
  const promote = new Map<string, string>();
  const today = new Date(options.now).toISOString().slice(0, 10);
  for (const s of suggestedRules(text)) {
    const rule = rules.get(s.name);
    if (!rule || s.mode !== "detect") continue;
    const cleanDays = runs.get(identityKey(ruleIdentity(rule))) ?? 0;
    const promoted = cleanDays >= options.cleanDays;
    checks.push({ name: s.name, cleanDays, promoted });
    if (promoted)
      promote.set(
        s.name,
        `moat suggest --promote ${today}: ${cleanDays} clean days (connections, none blocked or detected)`,
      );
  }
  return { checks, promote };
}

// The schema-valid document -> the normalized model, with every semantic check that needs more than
// the schema. Returns the model only when nothing was wrong; every problem found is in ctx.

import type { CheckContext } from "./check-context.ts";
import { parseIp } from "./ip.ts";
import type { Action, PolicyModel, PolicySet, Redirect, Rule } from "./model.ts";
import { normalizeMatch } from "./normalize-match.ts";
import { normalizeSets } from "./normalize-sets.ts";
import type { PolicyDocument, RuleDocument } from "./schema.ts";
import { parseDuration } from "./duration.ts";
import { timeoutTooLong } from "./dynamic-set-file.ts";
import { checkServices } from "./normalize-services.ts";
import { daemonFailure } from "./failure-daemon.ts";
import { dnsSettings } from "./dns-settings.ts";
import { eventsLostChoice } from "./failure-events.ts";
import { normalizeRateLimit } from "./normalize-rate-limit.ts";
import { anomalySettings } from "./anomaly-settings.ts";
import { normalizeSynFlood, normalizeUdpAmplification } from "./normalize-flood.ts";
import { normalizeIds } from "./normalize-ids.ts";

export function normalizePolicy(ctx: CheckContext, doc: PolicyDocument): PolicyModel | undefined {
  const { sets, files } = ctx.typed(["sets"])
    ? normalizeSets(ctx, doc)
    : { sets: new Map(), files: [] };
  const mode = doc.mode ?? "detect";
  if (doc.mode === undefined)
    ctx.warn(
      ["mode"],
      "'mode' is not set: moat runs in detect mode (reports, never drops); set mode: prevent to enforce",
    );
  const rules = ctx.typed(["rules"]) ? normalizeRules(ctx, doc, sets, mode) : [];
  const redirects = ctx.typed(["redirect"]) ? normalizeRedirects(ctx, doc, sets) : [];
  const services = checkServices(ctx, doc);
  const dns = dnsSettings(ctx, doc);
  const anomaly = anomalySettings(ctx, doc);
  const ids = normalizeIds(ctx, doc);
  if (ctx.diagnostics.some((d) => d.severity === "error")) return undefined;
  const defaults: PolicyModel["defaults"] = {
    ingress: doc.defaults?.ingress ?? "allow",
    egress: doc.defaults?.egress ?? "allow",
  };
  if (doc.defaults) defaults.pos = ctx.pos(["defaults"]);
  // a mistyped list was reported by the schema check; the model is not built then
  const entries = ctx.typed(["attach", "interfaces"]) ? doc.attach?.interfaces : undefined;
  const hooks = (entries ?? ["*"]).map((e) =>
    typeof e === "string"
      ? { name: e, ingress: "auto" as const }
      : { ingress: "auto" as const, ...e },
  );
  return {
    file: ctx.source.file,
    version: 1,
    mode,
    defaults,
    attach: {
      interfaces: {
        value: hooks.map((h) => h.name),
        pos: ctx.pos(["attach", "interfaces"]),
      },
      hooks,
      ...(doc.attach?.cgroup !== undefined
        ? { cgroup: { value: doc.attach.cgroup, pos: ctx.pos(["attach", "cgroup"]) } }
        : {}),
    },
    sets,
    rules,
    redirects,
    failure: {
      daemon: daemonFailure(doc),
      helper: doc.failure?.helper ?? "block",
      eventsLost: eventsLostChoice(doc),
      ...(doc.failure ? { pos: ctx.pos(["failure"]) } : {}),
    },
    dns,
    ...(anomaly ? { anomaly } : {}),
    ...services,
    ...scrubSettings(ctx, doc),
    ...normalizeSynFlood(ctx, doc, mode),
    ...normalizeUdpAmplification(ctx, doc, mode),
    ...(doc.flood?.icmp && ctx.clean(["flood", "icmp"])
      ? {
          icmpFlood: {
            maxSize: doc.flood.icmp.max_size,
            mode: doc.flood.icmp.mode ?? mode,
            pos: ctx.pos(["flood", "icmp"]),
          },
        }
      : {}),
    ...(doc.review?.silent_block !== undefined
      ? { review: { silentBlock: doc.review.silent_block, pos: ctx.pos(["review"]) } }
      : {}),
    ...ids,
    setFiles: [...files, ...(ids.ids?.files ?? [])],
  };
}

function normalizeRules(
  ctx: CheckContext,
  doc: PolicyDocument,
  sets: ReadonlyMap<string, PolicySet>,
  globalMode: "detect" | "prevent",
): Rule[] {
  const rules: Rule[] = [];
  const names = new Map<string, number>();
  (doc.rules ?? []).forEach((raw, index) => {
    const path = ["rules", index];
    if (typeof raw !== "object" || raw === null) return; // the schema said so
    if (ctx.clean([...path, "name"])) {
      const first = names.get(raw.name);
      if (first !== undefined)
        ctx.error(
          [...path, "name"],
          `duplicate rule name '${raw.name}' (first used at line ${ctx.pos(["rules", first]).line})`,
        );
      else names.set(raw.name, index);
    }
    const match = normalizeMatch(ctx, raw, path, sets);
    if (raw.layer4?.max_duration !== undefined && raw.action === "block")
      ctx.warn([...path, "layer4", "max_duration"], "'max_duration' has no effect on a block rule");
    const rateLimit = normalizeRateLimit(ctx, raw, path);
    const quarantine = normalizeQuarantine(ctx, raw, path, sets);
    if (!match || !ctx.typed(path)) return;
    const tls = match.layer7?.tls;
    if (tls) tls.unseenMatches = (tls.unknown ?? "block") === raw.action;
    // the match (made for this rule) completed field by field, in the order of the literal this
    // was: a copy and the optional parts' spreads cost temporary objects per rule of a big file
    const rule = match as Rule;
    rule.index = index;
    rule.name = raw.name;
    rule.action = raw.action as Action;
    rule.mode = raw.mode ?? globalMode;
    rule.ownMode = raw.mode !== undefined;
    rule.log = raw.log ?? false;
    if (rateLimit) rule.rateLimit = rateLimit;
    if (quarantine) rule.quarantine = quarantine;
    rule.pos = ctx.pos(path);
    rules.push(rule);
  });
  return rules;
}

/** `quarantine: { set, timeout }`: a dynamic set, and a rule whose matches are reported. */
function normalizeQuarantine(
  ctx: CheckContext,
  raw: RuleDocument,
  path: (string | number)[],
  sets: ReadonlyMap<string, PolicySet>,
): Rule["quarantine"] {
  const q = raw.quarantine;
  if (!q || !ctx.clean([...path, "quarantine"])) return undefined;
  const at = [...path, "quarantine"];
  let ok = true;
  if (sets.get(q.set)?.origin?.kind !== "dynamic") {
    ctx.error([...at, "set"], `'${q.set}' is not a dynamic set (declare it as { dynamic: true })`);
    ok = false;
  }
  if (raw.action === "allow" && raw.log !== true) {
    ctx.error(
      at,
      "an allow rule reports its matches only with 'log: true', which quarantine needs",
    );
    ok = false;
  }
  const seconds = parseDuration(q.timeout);
  if (!seconds.ok) {
    ctx.error([...at, "timeout"], seconds.error);
    return undefined;
  }
  const tooLong = timeoutTooLong(seconds.value);
  if (tooLong) {
    ctx.error([...at, "timeout"], tooLong);
    return undefined;
  }
  return ok ? { set: q.set, seconds: seconds.value } : undefined;
}

function normalizeRedirects(
  ctx: CheckContext,
  doc: PolicyDocument,
  sets: ReadonlyMap<string, PolicySet>,
): Redirect[] {
  const redirects: Redirect[] = [];
  const names = new Set<string>();
  (doc.redirect ?? []).forEach((raw, index) => {
    const path = ["redirect", index];
    if (typeof raw !== "object" || raw === null) return; // the schema said so
    if (ctx.clean([...path, "name"])) {
      if (names.has(raw.name))
        ctx.error([...path, "name"], `duplicate redirect name '${raw.name}'`);
      names.add(raw.name);
    }
    const match = ctx.clean([...path, "match"])
      ? normalizeMatch(ctx, raw.match, [...path, "match"], sets)
      : undefined;
    const to = ctx.clean([...path, "to"]) ? parseEndpoint(raw.to) : undefined;
    if (to === undefined && ctx.clean([...path, "to"]))
      ctx.error([...path, "to"], `'${raw.to}' is not IP:PORT (write [v6]:PORT for IPv6)`);
    if (!match || !to || !ctx.typed(path)) return;
    // moat's relay (proxy_protocol) is on loopback; any other target elsewhere cannot be asked
    if (raw.on_unavailable && !raw.proxy_protocol && !isLoopback(to))
      ctx.warn(
        [...path, "on_unavailable"],
        `${raw.to} is not a loopback address: moat cannot tell whether it listens, so on_unavailable never applies`,
      );
    redirects.push({
      ...match,
      name: raw.name,
      to,
      ...(raw.proxy_protocol ? { proxyProtocol: raw.proxy_protocol } : {}),
      ...(raw.on_unavailable ? { onUnavailable: raw.on_unavailable } : {}),
      pos: ctx.pos(path),
    });
  });
  return redirects;
}

const isLoopback = (to: Redirect["to"]): boolean =>
  to.family === 4 ? to.ip.startsWith("127.") : to.ip === "::1";

/** "127.0.0.1:8888" or "[::1]:8888". */
export function parseEndpoint(text: string): Redirect["to"] | undefined {
  const m = /^\[([^\]]+)\]:(\d{1,5})$/.exec(text) ?? /^([^:]+):(\d{1,5})$/.exec(text);
  if (!m) return undefined;
  const ip = parseIp(m[1] ?? "");
  const port = Number(m[2]);
  if (!ip.ok || port > 65535) return undefined;
  return { ip: m[1] ?? "", family: ip.value.family, port };
}

/** `scrub`: the MSS clamp of each family and the IP header's normalisation. */
function scrubSettings(ctx: CheckContext, doc: PolicyDocument): Pick<PolicyModel, "scrub"> {
  if (!doc.scrub || !ctx.clean(["scrub"])) return {};
  const { mss, min_ttl, clear_df, random_ip_id } = doc.scrub;
  const [mss4, mss6] =
    mss === undefined ? [] : typeof mss === "number" ? [mss, mss] : [mss.ipv4, mss.ipv6];
  return {
    scrub: {
      ...(mss4 !== undefined ? { mss4 } : {}),
      ...(mss6 !== undefined ? { mss6 } : {}),
      ...(min_ttl !== undefined ? { minTtl: min_ttl } : {}),
      ...(clear_df ? { clearDf: true } : {}),
      ...(random_ip_id ? { randomIpId: true } : {}),
      pos: ctx.pos(["scrub"]),
    },
  };
}

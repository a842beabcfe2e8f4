// The explain form: a connection typed as a person knows it, turned into the facts the reference
// evaluator takes (the same ConnectionFacts `moat explain` builds from its arguments).
import { parseProcessText, type ConnectionFacts } from "../../src/policy/index.ts";
import { processTextValue } from "../../src/policy/process-text.ts";
import type { ExplainLink } from "../shared/explain-link.ts";

export const FIELDS = [
  "direction",
  "protocol",
  "local",
  "local-port",
  "remote",
  "remote-port",
  "process",
  "user",
  "name",
  "http-method",
  "http-host",
  "http-path",
  "sni",
] as const;
export type Field = (typeof FIELDS)[number];
export type FormValues = Record<Field, string>;

export type Parsed = { ok: true; facts: ConnectionFacts } | { ok: false; error: string };

function portOf(text: string, side: string): number | undefined | string {
  if (text.trim() === "") return undefined;
  const n = Number(text);
  return Number.isInteger(n) && n >= 0 && n <= 65535 ? n : `${side} port must be 0-65535`;
}

/** The facts of a filled form, or what is wrong with it. */
export function factsOf(v: FormValues): Parsed {
  const direction = v.direction === "egress" ? "egress" : "ingress";
  const local = v.local.trim();
  const remote = v.remote.trim();
  if (!local || !remote) return { ok: false, error: "give the local and remote addresses" };
  const family = local.includes(":") || remote.includes(":") ? 6 : 4;
  const lp = portOf(v["local-port"], "local");
  const rp = portOf(v["remote-port"], "remote");
  if (typeof lp === "string") return { ok: false, error: lp };
  if (typeof rp === "string") return { ok: false, error: rp };
  const protocol = /^\d+$/.test(v.protocol) ? Number(v.protocol) : v.protocol;
  const facts: ConnectionFacts = {
    direction,
    protocol: protocol as ConnectionFacts["protocol"],
    family,
    local: { ip: local, ...(lp === undefined ? {} : { port: lp }) },
    remote: { ip: remote, ...(rp === undefined ? {} : { port: rp }) },
  };
  const process = v.process.trim();
  const user = v.user.trim();
  if (process || user) {
    // a bare path is all path, its commas too
    const items = process.includes("=")
      ? [process]
      : process
        ? [`path=${processTextValue(process)}`]
        : [];
    if (user) items.push(`user=${user}`);
    const parsed = parseProcessText(items);
    if (!parsed.ok) return { ok: false, error: parsed.error.replace(/^--process: /, "process: ") };
    facts.process = parsed.value;
  }
  const name = v.name.trim().toLowerCase().replace(/\.$/, "");
  if (name) facts.remote.names = [name];
  const [method, host, path] = [v["http-method"], v["http-host"], v["http-path"]].map((s) =>
    s.trim(),
  );
  if (host || path) {
    facts.layer7 = {
      http: {
        method: (method || "GET").toUpperCase(),
        host: (host ?? "").toLowerCase(),
        path: path || "/",
        headers: {},
        version: "1.1",
      },
    };
  } else if (v.sni.trim()) {
    facts.layer7 = { tls: { sni: v.sni.trim().toLowerCase().replace(/\.$/, ""), version: "1.3" } };
  }
  return { ok: true, facts };
}

/**
 * The port filled in where a link has none and its protocol needs one: the first of the ephemeral
 * range, the kind of port a client's side of a connection has.
 */
export const PLACEHOLDER_PORT = 49152;

/** The port fields a link leaves empty that its protocol needs (the form fills them). */
export function portsMissing(link: ExplainLink): ("local-port" | "remote-port")[] {
  if (link.protocol !== "tcp" && link.protocol !== "udp") return [];
  return [
    ...(link.ports?.local === undefined ? (["local-port"] as const) : []),
    ...(link.ports?.remote === undefined ? (["remote-port"] as const) : []),
  ];
}

/** The form's values for a deep link's connection (a needed port it lacks: PLACEHOLDER_PORT). */
export function valuesOfLink(link: ExplainLink): FormValues {
  const missing = portsMissing(link);
  const port = (side: "local" | "remote") =>
    link.ports?.[side]?.toString() ??
    (missing.includes(`${side}-port`) ? String(PLACEHOLDER_PORT) : "");
  return {
    direction: link.direction,
    protocol: link.protocol,
    local: link.local,
    "local-port": port("local"),
    remote: link.remote,
    "remote-port": port("remote"),
    process: link.process ?? "",
    user: link.user ?? "",
    name: link.name ?? "",
    "http-method": link.http?.method ?? "",
    "http-host": link.http?.host ?? "",
    "http-path": link.http?.path ?? "",
    sni: link.sni ?? "",
  };
}

/** The deep link of a filled form. */
export function linkOfValues(v: FormValues): ExplainLink {
  const link: ExplainLink = {
    direction: v.direction === "egress" ? "egress" : "ingress",
    protocol: v.protocol,
    local: v.local.trim(),
    remote: v.remote.trim(),
  };
  const [lp, rp] = [portOf(v["local-port"], ""), portOf(v["remote-port"], "")];
  const ports = {
    ...(typeof lp === "number" ? { local: lp } : {}),
    ...(typeof rp === "number" ? { remote: rp } : {}),
  };
  if (Object.keys(ports).length > 0) link.ports = ports;
  for (const key of ["process", "user", "name", "sni"] as const)
    if (v[key].trim()) link[key] = v[key].trim();
  if (v["http-host"].trim() || v["http-path"].trim())
    link.http = {
      method: v["http-method"].trim() || "GET",
      host: v["http-host"].trim(),
      path: v["http-path"].trim() || "/",
    };
  return link;
}

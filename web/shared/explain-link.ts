// The explain deep link's connection: `playground.html#explain=<base64url of this JSON>`. The live
// view writes it for an event; the playground reads it into its explain form. Pure and tolerant:
// a field of the wrong type is dropped, not guessed.

export interface ExplainLink {
  direction: "ingress" | "egress";
  protocol: string;
  /** This host's address and the peer's. */
  local: string;
  remote: string;
  ports?: { local?: number; remote?: number };
  /**
   * The process: an executable path, or KEY=VALUE,... as `moat explain --process` takes (a comma,
   * `=` or backslash in a value written after a backslash).
   */
  process?: string;
  /** A uid or a user name. */
  user?: string;
  /** A DNS name the remote address was resolved from. */
  name?: string;
  http?: { method: string; host: string; path: string };
  sni?: string;
}

const toBase64Url = (bytes: Uint8Array): string => {
  let bin = "";
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
};

const fromBase64Url = (text: string): Uint8Array => {
  const b64 = text.replace(/-/g, "+").replace(/_/g, "/");
  const bin = atob(b64 + "=".repeat((4 - (b64.length % 4)) % 4));
  return Uint8Array.from(bin, (c) => c.charCodeAt(0));
};

export { fromBase64Url, toBase64Url };

export function encodeExplainLink(link: ExplainLink): string {
  return toBase64Url(new TextEncoder().encode(JSON.stringify(link)));
}

const str = (v: unknown): string | undefined => (typeof v === "string" ? v : undefined);
const port = (v: unknown): number | undefined =>
  typeof v === "number" && Number.isInteger(v) && v >= 0 && v <= 65535 ? v : undefined;

/** The connection in a link, or undefined when the text is not one. */
export function decodeExplainLink(text: string): ExplainLink | undefined {
  let raw: unknown;
  try {
    raw = JSON.parse(new TextDecoder().decode(fromBase64Url(text)));
  } catch {
    return undefined;
  }
  if (typeof raw !== "object" || raw === null) return undefined;
  const o = raw as Record<string, unknown>;
  const direction = o.direction === "ingress" || o.direction === "egress" ? o.direction : undefined;
  const [protocol, local, remote] = [str(o.protocol), str(o.local), str(o.remote)];
  if (!direction || !protocol || local === undefined || remote === undefined) return undefined;
  const link: ExplainLink = { direction, protocol, local, remote };
  const ports = o.ports as Record<string, unknown> | undefined;
  if (ports && typeof ports === "object") {
    const [l, r] = [port(ports.local), port(ports.remote)];
    link.ports = {
      ...(l === undefined ? {} : { local: l }),
      ...(r === undefined ? {} : { remote: r }),
    };
  }
  for (const key of ["process", "user", "name", "sni"] as const) {
    const v = str(o[key]);
    if (v !== undefined) link[key] = v;
  }
  const http = o.http as Record<string, unknown> | undefined;
  if (http && typeof http === "object") {
    const [method, host, path] = [str(http.method), str(http.host), str(http.path)];
    if (method && host && path) link.http = { method, host, path };
  }
  return link;
}

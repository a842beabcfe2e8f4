// The console pages' side of the API when the daemon serves them: the session's scopes, and
// requests that carry the session's CSRF token (every write must).

/** The CSRF token the session cookie came with (the moat_csrf cookie, readable by the page). */
export function csrf(): string {
  return /(?:^|;\s*)moat_csrf=([^;]+)/.exec(document.cookie)?.[1] ?? "";
}

/** The session's scopes; null when no daemon serves the page (file://) or there is no session. */
export async function sessionScopes(): Promise<Set<string> | null> {
  if (location.protocol !== "http:" && location.protocol !== "https:") return null;
  try {
    const res = await fetch("/console/session", { credentials: "same-origin" });
    if (!res.ok) return null;
    return new Set(((await res.json()) as { scopes: string[] }).scopes);
  } catch {
    return null;
  }
}

export interface ApiAnswer<T> {
  ok: boolean;
  status: number;
  body: T | null;
  /** The API's error (message, details), when it refused. */
  error: { code: string; message: string; details?: string[] } | null;
}

/** A request with the session's cookie and CSRF token; the answer parsed, an error unwrapped. */
export async function send<T>(
  method: string,
  path: string,
  body?: string,
  type = "application/json",
): Promise<ApiAnswer<T>> {
  const res = await fetch(path, {
    method,
    credentials: "same-origin",
    headers: { "content-type": type, "x-moat-csrf": csrf() },
    ...(body === undefined ? {} : { body }),
  });
  const parsed = (await res.json().catch(() => null)) as
    (T & { error?: ApiAnswer<T>["error"] }) | null;
  const error = res.ok ? null : (parsed?.error ?? { code: "EHTTP", message: `HTTP ${res.status}` });
  return { ok: res.ok, status: res.status, body: res.ok ? parsed : null, error };
}

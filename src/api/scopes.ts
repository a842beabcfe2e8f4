// What an API token may do. Each endpoint needs one scope (routes.ts); a token holds a set.
export const SCOPES = ["read", "events", "metrics", "policy", "mode", "redirects", "ssh"] as const;

export type Scope = (typeof SCOPES)[number];

/** What each scope opens, for docs and messages. */
export const SCOPE_MEANING: Record<Scope, string> = {
  read: "status, per-rule counters, the running policy",
  events:
    "stored and live events (SSE, WebSocket), what-if replay of stored events, flow statistics, suggested rules",
  metrics: "Prometheus /metrics",
  policy:
    "validate and apply a policy (which can also set the mode); add and remove local decisions, answer the review queue",
  mode: "switch detect/prevent",
  redirects: "original destinations of redirected clients, for a proxy",
  // its own scope: each answer is a decision reported as an event, which read must not make
  ssh: "judge sshd's logins by key (moat ssh-authkeys); each judgement is an event",
};

export class ScopeError extends Error {
  /** The word that is no scope. */
  readonly word: string;
  constructor(word: string) {
    super(`unknown scope '${word}' (scopes: ${[...SCOPES, "all"].join(", ")})`);
    this.word = word;
  }
}

/** "read,events" -> the set; "all" is every scope. Throws ScopeError naming an unknown one. */
export function parseScopes(text: string): Set<Scope> {
  const out = new Set<Scope>();
  for (const word of text.split(",")) {
    if (word === "all") for (const s of SCOPES) out.add(s);
    else if ((SCOPES as readonly string[]).includes(word)) out.add(word as Scope);
    else throw new ScopeError(word);
  }
  return out;
}

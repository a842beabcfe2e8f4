// The OpenAPI 3 description served at /openapi.json.
const json = { "application/json": { schema: { type: "object" } } };
const error = {
  description: "error",
  content: {
    "application/json": {
      schema: {
        type: "object",
        properties: {
          error: {
            type: "object",
            required: ["code", "message"],
            properties: {
              code: { type: "string" },
              message: { type: "string" },
              details: { type: "array", items: { type: "string" } },
            },
          },
        },
      },
    },
  },
};
/** GET /v1/policy/suggest's parameters (POST takes them in its body). */
const suggestParameters = [
  [
    "since",
    "string",
    "the window: a duration back from now (7d), an ISO 8601 time with its offset or ms; default 7d",
  ],
  ["stable", "string", "a flow is learnt from once first seen this long ago (default 2d)"],
  [
    "siblings",
    "integer",
    "sibling names under a registrable domain that make *.domain (default 3)",
  ],
  ["addresses", "integer", "addresses in one /24 (IPv6 /64) that make the prefix (default 8)"],
  ["promote", "boolean", "promote proposed rules with enough clean days instead"],
  ["clean_days", "integer", "clean days in a row promotion needs (default 7)"],
].map(([name, type, description]) => ({ name, in: "query", schema: { type }, description }));
const filters = ["type", "verdict", "rule", "direction", "remote", "process", "container"].map(
  (name) => ({
    name,
    in: "query",
    required: false,
    schema: { type: "string" },
    description:
      name === "type"
        ? "comma-separated: allowed, blocked, detected, closed, dns, flow (stored flow summaries are listed only when named)"
        : name === "remote"
          ? "remote address, CIDR, or DNS name (events whose remote.names contain it)"
          : name === "process"
            ? "process name or pid"
            : name === "container"
              ? "container id prefix or name"
              : undefined,
  }),
);
const policyBody = {
  required: true,
  content: {
    "application/yaml": { schema: { type: "string" } },
    "text/plain": { schema: { type: "string" } },
  },
};

export const OPENAPI = {
  openapi: "3.0.3",
  info: {
    title: "moat API",
    version: "1",
    description:
      "Status, policy, mode, events and metrics of the moat daemon. The unix socket is root-only and may call everything; TCP listeners need a bearer token, and each operation needs the scope named in its `x-moat-scope` (read, events, metrics, policy, mode, redirects): a token without it gets 403 EFORBIDDEN.",
  },
  components: {
    securitySchemes: {
      bearer: {
        type: "http",
        scheme: "bearer",
        description:
          "A token from the daemon's token file; its scopes (read, events, metrics, policy, mode, redirects) decide which operations it may call (`x-moat-scope`).",
      },
    },
  },
  security: [{ bearer: [] }],
  paths: {
    "/v1/status": {
      get: {
        "x-moat-scope": "read",
        summary: "mode, policy hash, attached hooks, counters, losses, sinks",
        responses: { 200: { description: "status", content: json }, default: error },
      },
    },
    "/v1/rules": {
      get: {
        "x-moat-scope": "read",
        summary:
          "per-rule packets, bytes and connections, in policy order; total: how many rules the policy has; top=N lists only the N rules that judged the most connections (then packets), busiest first",
        parameters: [
          {
            name: "top",
            in: "query",
            schema: { type: "integer", minimum: 1, maximum: 10000 },
            description: "list the N busiest rules only",
          },
        ],
        responses: { 200: { description: "rules", content: json }, 400: error, default: error },
      },
    },
    "/v1/policy": {
      get: {
        "x-moat-scope": "read",
        summary: "the running policy (text, hash, generation, mode)",
        responses: { 200: { description: "policy", content: json }, default: error },
      },
      put: {
        "x-moat-scope": "policy",
        summary:
          "apply a policy atomically (refused with its errors if invalid; the running policy stays); confirm=SECONDS applies it on trial: not saved, reverted unless POST /v1/policy/confirm comes in time",
        parameters: [
          {
            name: "confirm",
            in: "query",
            schema: { type: "integer", minimum: 1, maximum: 86400 },
            description: "seconds the policy is on trial",
          },
        ],
        requestBody: policyBody,
        responses: { 200: { description: "applied", content: json }, 422: error, default: error },
      },
    },
    "/v1/policy/confirm": {
      post: {
        "x-moat-scope": "policy",
        summary: "keep the policy on trial (saves it to the policy file)",
        responses: { 200: { description: "confirmed", content: json }, 409: error, default: error },
      },
    },
    "/v1/policy/validate": {
      post: {
        "x-moat-scope": "policy",
        summary: "check a policy without applying it",
        requestBody: policyBody,
        responses: { 200: { description: "result", content: json }, default: error },
      },
    },
    "/v1/policy/replay": {
      post: {
        "x-moat-scope": "events",
        summary:
          "what-if: replay the stored events of a window through a draft policy; what it would newly block, allow or detect, by process and remote (set files in the draft need the policy scope too)",
        requestBody: {
          required: true,
          content: {
            "application/json": {
              schema: {
                type: "object",
                required: ["text"],
                properties: {
                  text: { type: "string", description: "the draft policy (YAML)" },
                  since: {
                    type: "string",
                    description:
                      "a duration back from now (24h, 7d), an ISO 8601 time with its offset or ms; default 24h",
                  },
                  until: { type: "string", description: "as since; default now" },
                  baseline: { type: "string", enum: ["recorded", "running"] },
                  limit: {
                    type: "integer",
                    minimum: 1,
                    maximum: 1000000,
                    description: "events read at most, newest first (default 100000)",
                  },
                },
              },
            },
          },
        },
        responses: {
          200: { description: "the changes, grouped", content: json },
          422: error,
          default: error,
        },
      },
    },
    "/v1/policy/suggest": {
      get: {
        "x-moat-scope": "events",
        summary:
          "least-privilege rules learnt from the flow roll-ups for the running policy: the new text, a unified diff, each proposed rule with its hits and reasons, what was not proposed and why, the overflow (docs/learning.md); nothing is applied",
        parameters: suggestParameters,
        responses: {
          200: { description: "the suggestion", content: json },
          404: error,
          default: error,
        },
      },
      post: {
        "x-moat-scope": "events",
        summary: "the same for a policy file's text (set files in it need the policy scope too)",
        requestBody: {
          required: true,
          content: {
            "application/json": {
              schema: {
                type: "object",
                required: ["text"],
                properties: {
                  text: { type: "string", description: "the policy file (YAML)" },
                  name: { type: "string", description: "the file's name in the diff" },
                  since: { type: "string" },
                  stable: { type: "string" },
                  siblings: { type: "integer" },
                  addresses: { type: "integer" },
                  promote: { type: "boolean" },
                  clean_days: { type: "integer" },
                },
              },
            },
          },
        },
        responses: {
          200: { description: "the suggestion", content: json },
          422: error,
          default: error,
        },
      },
    },
    "/v1/mode": {
      put: {
        "x-moat-scope": "mode",
        summary:
          "switch detect/prevent without a restart: a local decision over the policy file's mode (policy: the file's mode again)",
        requestBody: {
          required: true,
          content: {
            "application/json": {
              schema: {
                type: "object",
                required: ["mode"],
                properties: { mode: { type: "string", enum: ["detect", "prevent", "policy"] } },
              },
            },
          },
        },
        responses: { 200: { description: "switched", content: json }, default: error },
      },
    },
    "/v1/decisions": {
      get: {
        "x-moat-scope": "read",
        summary: "moat's local decisions (judged before the policy file's rules)",
        responses: { 200: { description: "the decisions and where they are kept", content: json } },
      },
      post: {
        "x-moat-scope": "policy",
        summary: "add a local decision (replaces one for the same destination)",
        requestBody: {
          required: true,
          content: {
            "application/json": {
              schema: {
                type: "object",
                required: ["action", "direction", "remote", "lifetime"],
                properties: {
                  action: { type: "string", enum: ["allow", "block"] },
                  direction: { type: "string", enum: ["ingress", "egress"] },
                  remote: { type: "string" },
                  protocol: { type: "string", enum: ["tcp", "udp", "icmp", "icmpv6"] },
                  port: { type: "integer" },
                  process: {
                    type: "object",
                    required: ["path"],
                    properties: {
                      path: { type: "string" },
                      user: {
                        description:
                          "a uid or a user name: the program run by that user only (absent: every user)",
                        oneOf: [{ type: "integer", minimum: 0 }, { type: "string" }],
                      },
                    },
                  },
                  lifetime: { type: "string" },
                },
              },
            },
          },
        },
        responses: {
          200: { description: "made and applied", content: json },
          422: error,
          default: error,
        },
      },
      delete: {
        "x-moat-scope": "policy",
        summary:
          "remove a local decision (connections an allow let through that the policy then blocks are cut)",
        parameters: [{ name: "id", in: "query", required: true, schema: { type: "string" } }],
        responses: { 200: { description: "removed", content: json }, 404: error, default: error },
      },
    },
    "/v1/review": {
      get: {
        "x-moat-scope": "events",
        summary: "the review queue: unknown connections waiting for a decision",
        responses: { 200: { description: "the entries, the overflow count", content: json } },
      },
    },
    "/v1/review/decide": {
      post: {
        "x-moat-scope": "policy",
        summary: "answer a review queue entry: allow or block its host, domain or wildcard",
        requestBody: {
          required: true,
          content: {
            "application/json": {
              schema: {
                type: "object",
                required: ["id", "action", "lifetime"],
                properties: {
                  id: { type: "string" },
                  action: { type: "string", enum: ["allow", "block"] },
                  scope: { type: "string", enum: ["host", "domain", "wildcard"] },
                  lifetime: { type: "string" },
                  name: { type: "string" },
                },
              },
            },
          },
        },
        responses: {
          200: { description: "made and applied", content: json },
          404: error,
          422: error,
          default: error,
        },
      },
    },
    "/v1/sets": {
      get: {
        "x-moat-scope": "read",
        summary: "dynamic sets (entries, expiries) and feeds (last fetch, entries not taken)",
        responses: { 200: { description: "{sets}", content: json }, default: error },
      },
    },
    ...Object.fromEntries(
      (["add", "del"] as const).map((op) => [
        `/v1/sets/${op}`,
        {
          post: {
            "x-moat-scope": "policy",
            summary:
              op === "add"
                ? "add an entry to a dynamic set (or renew its timeout); applied at once"
                : "remove an entry from a dynamic set; applied at once",
            requestBody: {
              required: true,
              content: {
                "application/json": {
                  schema: {
                    type: "object",
                    required: ["set", "entry"],
                    properties: {
                      set: { type: "string" },
                      entry: { type: "string", description: "an address, CIDR or range" },
                      ...(op === "add"
                        ? { timeout: { type: "integer", minimum: 1, description: "seconds" } }
                        : {}),
                    },
                  },
                },
              },
            },
            responses: {
              200: { description: "{ok, generation, entries}", content: json },
              default: error,
            },
          },
        },
      ]),
    ),
    "/v1/redirects/original": {
      get: {
        "x-moat-scope": "redirects",
        summary: "for a proxy: where a redirected client meant to go (docs/redirect.md)",
        parameters: [
          {
            name: "peer",
            in: "query",
            required: true,
            schema: { type: "string" },
            description:
              "the client as the proxy's accepted socket shows it: IP:PORT or [IPv6]:PORT",
          },
          { name: "protocol", in: "query", schema: { type: "string", enum: ["tcp", "udp"] } },
        ],
        responses: {
          200: { description: "{original, protocol, redirect, target, process}", content: json },
          default: error,
        },
      },
    },
    "/v1/ssh/authorized-keys": {
      get: {
        "x-moat-scope": "ssh",
        summary:
          "for sshd (moat ssh-authkeys): the client keys the running policy allows for a login; each decision is an event",
        parameters: [
          ["user", true, "the login name (sshd's %u)"],
          ["client", true, "the client's address"],
          ["client_port", false, "the client's port"],
          ["server", false, "sshd's address (default: any, port 22)"],
          ["server_port", false, "sshd's port"],
          [
            "key",
            false,
            'the offered key "TYPE BASE64" (sshd\'s %t %k); default: every key the policy names',
          ],
        ].map(([name, required, description]) => ({
          name,
          in: "query",
          required,
          schema: { type: "string" },
          description,
        })),
        responses: {
          200: { description: "{generation, keys, verdicts}", content: json },
          default: error,
        },
      },
    },
    "/v1/events": {
      get: {
        "x-moat-scope": "events",
        summary: "stored events, newest first, a page at a time",
        parameters: [
          ...filters,
          {
            name: "since",
            in: "query",
            schema: { type: "string" },
            description: "an ISO 8601 time with its offset, or ms",
          },
          {
            name: "until",
            in: "query",
            schema: { type: "string" },
            description: "an ISO 8601 time with its offset, or ms",
          },
          {
            name: "before",
            in: "query",
            schema: { type: "integer" },
            description: "page cursor (`next` of the previous page)",
          },
          { name: "limit", in: "query", schema: { type: "integer", maximum: 1000 } },
        ],
        responses: { 200: { description: "{events, next}", content: json }, default: error },
      },
    },
    "/v1/anomalies": {
      get: {
        "x-moat-scope": "events",
        summary:
          "the last anomalies reported (each as its type anomaly event, with accepted true once accepted as normal) and the acceptances (docs/anomaly.md)",
        responses: {
          200: { description: "{enabled, anomalies, accepted}", content: json },
          default: error,
        },
      },
    },
    "/v1/anomalies/accept": {
      post: {
        "x-moat-scope": "policy",
        summary:
          "accept an anomaly as normal: its value (and up to 1.5 times it) becomes part of the identity's baseline; kept across restarts and audited",
        requestBody: {
          content: {
            "application/json": {
              schema: { type: "object", required: ["id"], properties: { id: { type: "string" } } },
            },
          },
        },
        responses: {
          200: {
            description: "the acceptance {id, kind, identity, key, value, at, by}",
            content: json,
          },
          default: error,
        },
      },
    },
    "/v1/stats": {
      get: {
        "x-moat-scope": "events",
        summary:
          "flow statistics from the history's roll-ups (minute, hour, day): per identity (executable, user, cgroup, container), peer (DNS name, else address), port, protocol and direction, the connections, bytes, packets, durations, first/last seen and connections by verdict; most bytes first (docs/observability.md)",
        parameters: [
          {
            name: "since",
            in: "query",
            schema: { type: "string" },
            description: "an ISO 8601 time with its offset, or ms (default: a day ago)",
          },
          {
            name: "until",
            in: "query",
            schema: { type: "string" },
            description: "an ISO 8601 time with its offset, or ms",
          },
          {
            name: "process",
            in: "query",
            schema: { type: "string" },
            description: "an executable path or its file name",
          },
          {
            name: "peer",
            in: "query",
            schema: { type: "string" },
            description: "a peer's DNS name (its subdomains too) or address",
          },
          { name: "limit", in: "query", schema: { type: "integer", maximum: 1000 } },
        ],
        responses: {
          200: { description: "{resolution, since, until, rows}", content: json },
          default: error,
        },
      },
    },
    "/v1/events/stream": {
      get: {
        "x-moat-scope": "events",
        summary:
          "live events (Server-Sent Events, one `data:` JSON event each; or a WebSocket upgrade, one JSON text message each)",
        parameters: filters,
        responses: {
          200: {
            description: "event stream",
            content: { "text/event-stream": { schema: { type: "string" } } },
          },
          default: error,
        },
      },
    },
    "/v1/flows/stream": {
      get: {
        "x-moat-scope": "events",
        summary:
          "live flows for the web console (Server-Sent Events): `event: snapshot` with every flow held, then `event: delta` at most every 250 ms with the flows changed (at most 100 a delta) and the ids evicted; each flow aggregates events by process or container, remote, port, protocol, verdict and rule, with counts per type and the time last seen (docs/api.md)",
        responses: {
          200: {
            description: "flow stream",
            content: { "text/event-stream": { schema: { type: "string" } } },
          },
          default: error,
        },
      },
    },
    "/v1/console/url": {
      post: {
        "x-moat-scope": "read",
        summary:
          'a one-time web console login URL (`moat console`): body `{"scopes": ["read", "events"]}` (the default; never more than the caller holds). Over the unix socket the URL is on a loopback listener the daemon opens (or reuses); over TCP it is on the same listener, which must use TLS or loopback. The secret is in the URL fragment and works once, for 2 minutes (docs/console.md)',
        requestBody: { required: false, content: json },
        responses: {
          200: { description: "{url, scopes, expiresAt}", content: json },
          default: error,
        },
      },
    },
    "/metrics": {
      get: {
        "x-moat-scope": "metrics",
        summary: "Prometheus metrics",
        responses: {
          200: {
            description: "text exposition",
            content: { "text/plain": { schema: { type: "string" } } },
          },
          default: error,
        },
      },
    },
    "/openapi.json": {
      get: {
        "x-moat-scope": null,
        summary: "this document",
        security: [],
        responses: { 200: { description: "OpenAPI 3", content: json } },
      },
    },
  },
} as const;

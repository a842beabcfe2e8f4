// The policy file's schema: the single source of the TypeScript types and of schema/moat.schema.json.

import { Type, type Static } from "@sinclair/typebox";
import { List, Section, StringEnum } from "./schema-helpers.ts";
import { ACTIONS, MODES, MatchSchema, RuleSchema } from "./schema-rule.ts";
import { ScrubSchema } from "./schema-rate-limit.ts";
import { FloodSchema } from "./schema-flood.ts";
import { IdsSchema } from "./schema-ids.ts";
import { DAEMON_FAILURES } from "./failure-daemon.ts";
import { EVENTS_LOST_CHOICES } from "./failure-events.ts";
import { AnomalySchema } from "./schema-anomaly.ts";

export const EVENT_TYPES = [
  "allowed",
  "blocked",
  "detected",
  "anomaly",
  "closed",
  "exe_changed",
] as const;
export const FAILURE_ACTIONS = ["block", "allow"] as const;

const SetEntrySchema = Type.Union([Type.Integer(), Type.String({ minLength: 1 })], {
  description: "an address entry (as in layer3) or a port entry (as in layer4)",
  errorMessage: "must be an address or a port",
});

const SetDuration = (description: string) =>
  Type.Union([Type.Integer({ minimum: 1 }), Type.String({ minLength: 1 })], {
    description,
    errorMessage: 'must be a duration like "90s", "30m", "1h", "1d"',
  });

/** What a feed's entries are read as (docs/feeds.md). */
export const FEED_FORMATS = ["plain", "csv", "stix"] as const;

/** Where a feed comes from and what its matches are tagged with (with `file:` or `url:`). */
const FeedFields = {
  format: Type.Optional(
    StringEnum(FEED_FORMATS, "plain (one entry a line, default), csv or stix (a STIX 2.1 bundle)"),
  ),
  column: Type.Optional(
    Type.Integer({ minimum: 1, description: "csv: the column holding the address (default 1)" }),
  ),
  category: Type.Optional(Type.String({ minLength: 1, description: "feed category, on events" })),
  confidence: Type.Optional(
    Type.Integer({ minimum: 0, maximum: 100, description: "feed confidence 0-100, on events" }),
  ),
};

const SetSchema = Type.Union(
  [
    List(SetEntrySchema, "inline entries: addresses or ports (not both)"),
    Section(
      {
        file: Type.String({ minLength: 1, description: "relative to the policy file's folder" }),
        ...FeedFields,
      },
      { description: "one entry a line, # comments; reloaded on change" },
    ),
    Section(
      {
        url: Type.String({ minLength: 1, description: "http(s) URL the daemon fetches" }),
        interval: Type.Optional(SetDuration("how often the daemon fetches it (default 1h)")),
        max_bytes: Type.Optional(
          Type.Integer({
            minimum: 1,
            description: "largest body fetched (default and most: 64 MiB, 67108864)",
          }),
        ),
        ...FeedFields,
      },
      { description: "a feed the daemon fetches (ETag / If-Modified-Since), kept in its state" },
    ),
    Section(
      {
        dynamic: Type.Literal(true, { description: "changed at run time with `moat set`" }),
        timeout: Type.Optional(SetDuration("default lifetime of an entry (default: none)")),
        max_entries: Type.Optional(
          Type.Integer({
            minimum: 1,
            description: "entries held at most (default 65536, most 500000)",
          }),
        ),
        crowdsec: Type.Optional(
          Section(
            {
              url: Type.Optional(
                Type.String({
                  minLength: 1,
                  description: "CrowdSec local API (default http://127.0.0.1:8080)",
                }),
              ),
              key_file: Type.String({
                minLength: 1,
                description: "file holding the bouncer's API key",
              }),
              interval: Type.Optional(SetDuration("how often decisions are polled (default 10s)")),
            },
            { description: "fill the set with CrowdSec's ban decisions (a bouncer)" },
          ),
        ),
      },
      { description: "entries added and removed at run time, kept in the daemon's state" },
    ),
  ],
  { errorMessage: "must be a list of entries, { file: PATH }, { url: URL } or { dynamic: true }" },
);

const DefaultsSchema = Section(
  {
    ingress: Type.Optional(StringEnum(ACTIONS, "verdict for an unknown inbound connection")),
    egress: Type.Optional(StringEnum(ACTIONS, "verdict for an unknown outbound connection")),
  },
  {
    description: 'verdict for a connection no rule matches ("unknown connection"); allow if absent',
  },
);

export const INGRESS_HOOKS = ["auto", "xdp", "tc"] as const;

const InterfaceEntrySchema = Type.Union(
  [
    Type.String({
      minLength: 1,
      description: "a name or glob; incoming packets judged at the hook auto chooses",
    }),
    Section(
      {
        name: Type.String({ minLength: 1, description: 'a name or glob; "*" = every one but lo' }),
        ingress: Type.Optional(
          StringEnum(
            INGRESS_HOOKS,
            "the hook that judges incoming packets: auto (default: tc on veth and virtio_net, xdp elsewhere), xdp or tc",
          ),
        ),
      },
      { description: "an interface pattern with the hooks it gets" },
    ),
  ],
  { errorMessage: "must be an interface name or glob, or { name, ingress }" },
);

const AttachSchema = Section({
  interfaces: Type.Optional(
    List(
      InterfaceEntrySchema,
      'names or globs; "*" = every non-loopback interface; the first entry that matches decides',
    ),
  ),
  cgroup: Type.Optional(
    Type.String({
      minLength: 1,
      description: "cgroup v2 subtree whose processes get socket hooks",
    }),
  ),
});

const RedirectSchema = Section({
  name: Type.String({
    pattern: "^[a-z0-9][a-z0-9-]*$",
    errorMessage: "must be lowercase letters, digits and '-', starting with a letter or digit",
  }),
  match: MatchSchema,
  to: Type.String({ minLength: 1, description: "proxy address IP:PORT ([v6]:PORT)" }),
  proxy_protocol: Type.Optional(StringEnum(["v1", "v2"], "PROXY protocol header to send")),
  on_unavailable: Type.Optional(
    StringEnum(FAILURE_ACTIONS, "when the target does not listen; failure.helper if absent"),
  ),
});

const FailureSchema = Section(
  {
    daemon: Type.Optional(
      StringEnum(
        DAEMON_FAILURES,
        "when the daemon dies: enforce the last policy (default), or allow everything",
      ),
    ),
    helper: Type.Optional(
      StringEnum(
        FAILURE_ACTIONS,
        "a redirect's target (moat's relay, a local proxy) does not listen: block (default) the connection, or allow it to its original destination",
      ),
    ),
    events_lost: Type.Optional(
      StringEnum(
        EVENTS_LOST_CHOICES,
        "events lost in the kernel: report (default: counted and logged), or notify (also a notice through every sink)",
      ),
    ),
  },
  { description: "what moat does when something it relies on fails" },
);

const Duration = (description: string) =>
  Type.Union([Type.Integer({ minimum: 0 }), Type.String({ minLength: 1 })], {
    description,
    errorMessage: 'must be a duration like "5s", "2m" or "0s", or a whole number of seconds',
  });

const DnsSettingsSchema = Section(
  {
    resolvers: Type.Optional(
      List(
        Type.String({ minLength: 1, description: "an IPv4 or IPv6 address" }),
        "resolvers trusted besides /etc/resolv.conf's nameservers and loopback stubs: only their answers bind names to addresses",
      ),
    ),
    min_ttl: Type.Optional(
      Duration("a binding lives at least this long, however short the answer's TTL (default 5s)"),
    ),
    grace: Type.Optional(
      Duration(
        "added to every binding's life, for clients that cache a little longer (default 30s)",
      ),
    ),
    doh: Type.Optional(
      StringEnum(
        ["allow", "block"],
        "block: DNS over HTTPS/TLS to set:doh-resolvers (tcp/udp 443, 853) is blocked before the rules, and the canary use-application-dns.net answers NXDOMAIN (default allow)",
      ),
    ),
    doh_list: Type.Optional(
      Type.String({
        minLength: 1,
        description:
          "a file replacing the shipped list of DoH resolvers (set:doh-resolvers): one address, CIDR or hostname a line, # comments",
      }),
    ),
    ech: Type.Optional(
      StringEnum(
        ["strip", "keep"],
        "strip: the ech parameter is removed from HTTPS/SVCB answers, so TLS clients send a visible SNI (default keep)",
      ),
    ),
  },
  { description: "how moat learns the addresses of names (hostname entries, layer7.dns)" },
);

const LoggingSchema = Section({
  audit: Type.Optional(
    Section({ path: Type.String({ minLength: 1, description: "human-readable audit log" }) }),
  ),
  history: Type.Optional(
    Section(
      {
        path: Type.Optional(
          Type.String({
            minLength: 1,
            description: "SQLite file (default /var/lib/moat/history.db)",
          }),
        ),
        max_age: Type.Optional(
          Type.Union([Type.Integer({ minimum: 1 }), Type.String({ minLength: 1 })], {
            description: "events older than this are deleted, e.g. 30d (default 30d)",
          }),
        ),
        max_size: Type.Optional(
          Type.Union([Type.Integer({ minimum: 1 }), Type.String({ minLength: 1 })], {
            description: "the store is kept under this size, e.g. 500MB (default 1GB)",
          }),
        ),
        flow_interval: Type.Optional(
          Type.Union([Type.Integer({ minimum: 1 }), Type.String({ minLength: 1 })], {
            description:
              "how often flow records of open connections are written and the window's summaries stored, e.g. 60s (default 60s)",
          }),
        ),
      },
      { description: "the event history the API and 'moat events' query" },
    ),
  ),
});

const OtelSchema = Section({
  endpoint: Type.String({ minLength: 1, description: "OTLP/HTTP endpoint URL" }),
});

const EventPublisherSchema = Section({
  webhooks: Type.Optional(
    List(
      Section({
        url: Type.String({ minLength: 1 }),
        types: Type.Optional(List(StringEnum(EVENT_TYPES), "event types sent; absent = all")),
        secret_file: Type.Optional(
          Type.String({
            minLength: 1,
            description: "root-only file holding the HMAC-SHA256 key that signs each delivery",
          }),
        ),
      }),
    ),
  ),
  nats: Type.Optional(
    Section({ url: Type.String({ minLength: 1 }), subject: Type.String({ minLength: 1 }) }),
  ),
});

const FleetSchema = Section(
  {
    url: Type.String({
      minLength: 1,
      description:
        "nats:// or tls:// URL of a server of the NATS cluster (the client learns the others)",
    }),
    host: Type.Optional(
      Type.String({
        minLength: 1,
        description:
          "this host's name in subjects and keys, [A-Za-z0-9_-] (default: the machine's host name, other characters as _)",
      }),
    ),
    nkey_seed_file: Type.Optional(
      Type.String({ minLength: 1, description: "root-only file holding this host's nkey seed" }),
    ),
    events: Type.Optional(
      Section(
        {
          subject: Type.Optional(
            Type.String({
              minLength: 1,
              description: "events go to SUBJECT.HOST in a JetStream stream (default moat.events)",
            }),
          ),
        },
        { description: "publish every event to JetStream (at least once, de-duplicated)" },
      ),
    ),
    policy: Type.Optional(
      Section(
        {
          bucket: Type.String({
            minLength: 1,
            description:
              "JetStream key-value bucket: follows key policy.HOST, reports to status.HOST",
          }),
          state_file: Type.Optional(
            Type.String({
              minLength: 1,
              description:
                "where the last applied revision is kept (default /var/lib/moat/fleet-policy.json)",
            }),
          ),
          signers: Type.Optional(
            Type.Array(Type.String({ minLength: 1 }), {
              minItems: 1,
              description:
                "public nkeys (U...): a revision is applied only if one of them signed it for this host's key (moat fleet put --sign)",
            }),
          ),
          report_within: Type.Optional(
            SetDuration(
              "an applied revision whose report the host cannot write in this long is reverted, 5s to 1h (default 60s)",
            ),
          ),
        },
        { description: "follow this host's policy from a key-value bucket" },
      ),
    ),
  },
  { description: "events to and policy from a NATS JetStream cluster (docs/fleet.md)" },
);

const ApiSchema = Section({
  listen: Type.String({
    minLength: 1,
    description: "unix:/PATH or HOST:PORT; TCP listeners need token_file",
  }),
  token_file: Type.Optional(
    Type.String({ minLength: 1, description: "file holding the bearer token" }),
  ),
  tls: Type.Optional(
    Section(
      {
        cert: Type.String({ minLength: 1, description: "PEM certificate (chain) file" }),
        key: Type.String({ minLength: 1, description: "PEM private key file" }),
      },
      { description: "serve a TCP listener over TLS" },
    ),
  ),
});

export const PolicySchema = Section(
  {
    version: Type.Literal(1, { description: "policy language version" }),
    mode: Type.Optional(
      StringEnum(MODES, "detect (default) never drops and reports what prevent would do"),
    ),
    defaults: Type.Optional(DefaultsSchema),
    attach: Type.Optional(AttachSchema),
    sets: Type.Optional(
      Type.Record(Type.String(), SetSchema, {
        description: 'named lists, referenced as "set:NAME"',
      }),
    ),
    rules: Type.Optional(List(RuleSchema, "evaluated top to bottom; the first match decides")),
    redirect: Type.Optional(List(RedirectSchema, "send matching connections to a proxy")),
    logging: Type.Optional(LoggingSchema),
    otel: Type.Optional(OtelSchema),
    event_publisher: Type.Optional(EventPublisherSchema),
    api: Type.Optional(ApiSchema),
    fleet: Type.Optional(FleetSchema),
    failure: Type.Optional(FailureSchema),
    dns: Type.Optional(DnsSettingsSchema),
    scrub: Type.Optional(ScrubSchema),
    anomaly: Type.Optional(AnomalySchema),
    flood: Type.Optional(FloodSchema),
    ids: Type.Optional(IdsSchema),
    review: Type.Optional(
      Section(
        {
          silent_block: Type.Optional(
            Type.Boolean({
              description:
                "prevent mode: unknown connections the defaults block also go to the review queue (detect mode always queues them)",
            }),
          ),
        },
        { description: 'the review queue of unknown connections (docs/policy.md, "Decide later")' },
      ),
    ),
  },
  { title: "moat policy", description: "moat firewall policy (version 1)" },
);

/** A policy file as written, once it passed the schema. */
export type PolicyDocument = Static<typeof PolicySchema>;
export type RuleDocument = Static<typeof RuleSchema>;

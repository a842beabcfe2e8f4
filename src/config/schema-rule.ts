// The schema of one rule: what it matches (layer3, layer4, process, interface, layer7) and what it does.
// Field names are the contract of docs/policy.md and the shared policy-language page: never rename.

import { Type, type Static } from "@sinclair/typebox";
import { List, Section, StringEnum } from "./schema-helpers.ts";
import { RateLimitSchema } from "./schema-rate-limit.ts";

export const ACTIONS = ["allow", "block"] as const;
export const MODES = ["detect", "prevent"] as const;
export const RULE_DIRECTIONS = ["ingress", "egress", "any"] as const;
export const PROTOCOL_NAMES = ["tcp", "udp", "icmp", "icmpv6", "any"] as const;

const RULE_NAME = "^[a-z0-9][a-z0-9-]*$";

export const AddressEntrySchema = Type.String({
  minLength: 1,
  description:
    'IP, CIDR, "a-b" range, set:NAME, or a hostname: "name", "*.name" (one label below), "**.name" (any depth below), learned from DNS per process, egress rules only; a leading "!" excludes (not names)',
});

export const AddressListSchema = List(
  AddressEntrySchema,
  "matches if the address is in some entry and in no '!' entry; empty or absent matches anything",
);

export const PortEntrySchema = Type.Union(
  [Type.Integer({ minimum: 0, maximum: 65535 }), Type.String({ minLength: 1 })],
  {
    description: 'port, "a-b" range or set:NAME',
    errorMessage: 'must be a port, "a-b" range or set:NAME',
  },
);

const PortListSchema = (description: string) => List(PortEntrySchema, description);

export const Layer3Schema = Section(
  {
    remote: Type.Optional(AddressListSchema),
    local: Type.Optional(AddressListSchema),
  },
  { description: "addresses of the peer (remote) and of this host (local)" },
);

export const IcmpSchema = Section(
  {
    type: Type.Integer({
      minimum: 0,
      maximum: 255,
      description: "ICMP type, e.g. 8 = echo request",
    }),
    code: Type.Optional(
      Type.Integer({ minimum: 0, maximum: 255, description: "absent = any code" }),
    ),
  },
  { description: "only with protocol icmp or icmpv6" },
);

export const Layer4Schema = Section(
  {
    protocol: Type.Optional(
      Type.Union([StringEnum(PROTOCOL_NAMES), Type.Integer({ minimum: 0, maximum: 255 })], {
        description: "tcp | udp | icmp | icmpv6 | any (default), or an IP protocol number",
        errorMessage: "must be one of tcp, udp, icmp, icmpv6, any, or a protocol number 0-255",
      }),
    ),
    port: Type.Optional(PortListSchema("the server port of the connection (tcp/udp)")),
    source_port: Type.Optional(PortListSchema("the client port of the connection (tcp/udp)")),
    icmp: Type.Optional(IcmpSchema),
    max_duration: Type.Optional(
      Type.Union([Type.String({ minLength: 1 }), Type.Integer({ minimum: 1 })], {
        description:
          'TCP only: an allowed connection older than this is reset ("8h", "30m", "90s")',
        errorMessage: 'must be a duration like "90s", "30m", "8h", "1d"',
      }),
    ),
  },
  { description: "protocol and ports" },
);

const Globs = (description: string) =>
  Type.Union([Type.String({ minLength: 1 }), List(Type.String({ minLength: 1 }))], {
    description,
    errorMessage: "must be a string or a list of strings",
  });

export const ProcessSchema = Section(
  {
    path: Type.Optional(Globs("glob on the executable path")),
    name: Type.Optional(Globs("the process name (comm), glob")),
    user: Type.Optional(
      List(
        Type.Union([Type.Integer({ minimum: 0 }), Type.String({ minLength: 1 })], {
          errorMessage: "must be a uid or a user name",
        }),
        "uid or user name",
      ),
    ),
    cgroup: Type.Optional(Globs("cgroup v2 path; matches that cgroup and everything under it")),
    container: Type.Optional(
      Section({
        id: Type.Optional(Type.String({ minLength: 1, description: "glob on the container id" })),
        name: Type.Optional(
          Type.String({ minLength: 1, description: "glob on the container name" }),
        ),
        image: Type.Optional(Type.String({ minLength: 1, description: "glob on the image" })),
      }),
    ),
  },
  { description: "who owns the socket on this host (socket-level hooks)" },
);

export const InterfaceSchema = Section(
  {
    name: Type.Optional(List(Type.String({ minLength: 1 }), "interface names or globs")),
    tunnel: Type.Optional(
      Type.Boolean({
        description: "true = only tunnelled paths (wireguard, vxlan, gre...), false = none",
      }),
    ),
  },
  { description: "the interface the connection actually leaves or enters by" },
);

const Strings = (description: string) => List(Type.String({ minLength: 1 }), description);

export const HttpSchema = Section({
  host: Type.Optional(Strings('host name patterns: exact, "*." one label below, "**." any depth')),
  method: Type.Optional(Strings("request methods, e.g. GET")),
  path: Type.Optional(Strings("globs on the request path")),
  headers: Type.Optional(
    Type.Record(Type.String(), Type.String(), { description: "header name -> glob on its value" }),
  ),
  version: Type.Optional(List(StringEnum(["1.0", "1.1", "2", "3"]), "HTTP versions")),
  trust_host: Type.Optional(
    Type.Boolean({
      description:
        "true = the Host header is taken as sent; default: it matches only a name this process resolved to the address",
    }),
  ),
});

export const TlsSchema = Section({
  sni: Type.Optional(Strings('server name patterns: exact, "*." one label below, "**." any depth')),
  version: Type.Optional(
    List(
      Type.String({
        pattern: "^(>=|<=|>|<|=)?1\\.[0-3]$",
        errorMessage: 'must be a TLS version like "1.2" or ">=1.2"',
      }),
      'TLS versions: "1.2", ">=1.2", "<1.3"',
    ),
  ),
  alpn: Type.Optional(Strings("ALPN protocol ids; matches when the client offers one of them")),
  ech: Type.Optional(Type.Boolean({ description: "true = the ClientHello offers ECH" })),
  certificate: Type.Optional(
    Section({
      subject_cn: Type.Optional(Type.String({ minLength: 1, description: "glob" })),
      issuer: Type.Optional(
        Type.String({ minLength: 1, description: "glob on the issuer's name or one of its parts" }),
      ),
      valid: Type.Optional(Type.Boolean({ description: "chain verifies and dates are current" })),
      san: Type.Optional(Strings("globs on the subject alternative names; any SAN matches")),
      not_after: Type.Optional(
        Type.String({
          pattern: "^[<>][0-9]{1,5}d$",
          description: 'time left before the certificate expires: "<30d" or ">30d"',
          errorMessage: 'must be a time left like "<30d" or ">30d"',
        }),
      ),
      fingerprint: Type.Optional(
        List(
          Type.String({
            pattern: "^([0-9A-Fa-f]{2}:){31}[0-9A-Fa-f]{2}$",
            errorMessage: 'must be a SHA-256 fingerprint in openssl\'s form "AB:CD:..." (32 bytes)',
          }),
          "SHA-256 fingerprints of the server certificate, any case",
        ),
      ),
    }),
  ),
  unknown: Type.Optional(
    StringEnum(
      ["allow", "block"],
      "what the rule leans to when a fact it needs cannot be seen (a TLS 1.3 certificate the probe did not get, the inner name of ECH): block (default) = an allow rule does not match, a block rule does; allow = the reverse",
    ),
  ),
  trust_sni: Type.Optional(
    Type.Boolean({
      description:
        "true = the SNI is taken as sent; default: it matches only a name this process resolved to the address",
    }),
  ),
});

export const DnsSchema = Section({
  name: Type.Optional(
    Strings(
      "name patterns of DNS queries (port 53) allowed (allow rule) or refused (block rule), judged by moat's DNS proxy",
    ),
  ),
  over_tls: Type.Optional(
    Type.Boolean({
      description: "true = DNS over TLS (tcp port 853), false = plain DNS (port 53); by ports",
    }),
  ),
});

export const SshSchema = Section({
  host_key: Type.Optional(Strings("server host key fingerprints (SHA256:...)")),
  version: Type.Optional(Strings("globs on the SSH version banner")),
  client_key: Type.Optional(
    Strings(
      'ingress: public keys in authorized_keys format ("ssh-ed25519 AAAA... comment") that moat ssh-authkeys prints for logins this rule allows',
    ),
  ),
  user: Type.Optional(Strings("ingress: globs on the login name (moat ssh-authkeys)")),
});

export type SshDocument = Static<typeof SshSchema>;

export const Layer7Schema = Section(
  {
    http: Type.Optional(HttpSchema),
    tls: Type.Optional(TlsSchema),
    dns: Type.Optional(DnsSchema),
    ssh: Type.Optional(SshSchema),
  },
  { description: "application protocol; a connection matches the sub-section of its own protocol" },
);

/** What a rule (or a redirect) matches: every section named must match. */
export const MatchProperties = {
  direction: StringEnum(
    RULE_DIRECTIONS,
    "ingress (remote initiates) | egress (this host initiates) | any",
  ),
  layer3: Type.Optional(Layer3Schema),
  layer4: Type.Optional(Layer4Schema),
  process: Type.Optional(ProcessSchema),
  interface: Type.Optional(InterfaceSchema),
  layer7: Type.Optional(Layer7Schema),
};

export const MatchSchema = Section(MatchProperties);

export const RuleSchema = Section({
  name: Type.String({
    pattern: RULE_NAME,
    description: "unique; lowercase letters, digits and '-'",
    errorMessage: "must be lowercase letters, digits and '-', starting with a letter or digit",
  }),
  ...MatchProperties,
  action: StringEnum(ACTIONS, "allow | block"),
  mode: Type.Optional(StringEnum(MODES, "overrides the global mode for this rule only")),
  log: Type.Optional(
    Type.Boolean({ description: "also report allowed matches (blocks are always reported)" }),
  ),
  rate_limit: Type.Optional(RateLimitSchema),
  quarantine: Type.Optional(
    Section(
      {
        set: Type.String({ minLength: 1, description: "a dynamic set the host is added to" }),
        timeout: Type.Union([Type.Integer({ minimum: 1 }), Type.String({ minLength: 1 })], {
          description: "how long the host stays in it",
          errorMessage: 'must be a duration like "90s", "30m", "1h", "1d"',
        }),
      },
      {
        description:
          "a connection this rule matches puts its local address into a dynamic set for a while",
      },
    ),
  ),
});

export type MatchDocument = Static<typeof MatchSchema>;
export type Layer4Document = Static<typeof Layer4Schema>;
export type Layer7Document = Static<typeof Layer7Schema>;

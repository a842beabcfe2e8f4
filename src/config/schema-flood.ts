// The schema of `flood` (docs/policy.md, "flood"): the SYN flood defence of the host's TCP ports.
import { Type, type Static } from "@sinclair/typebox";
import { Section, StringEnum } from "./schema-helpers.ts";
import { RateLimitSchema } from "./schema-rate-limit.ts";

const ModeSchema = (what: string) =>
  StringEnum(["detect", "prevent"] as const, `${what} (default: the policy's mode)`);

const Duration = (description: string) =>
  Type.Union([Type.String({ minLength: 1 }), Type.Integer({ minimum: 1 })], {
    description,
    errorMessage: 'must be a duration like "10s", "1m"',
  });

export const SynFloodSchema = Section(
  {
    ports: Type.Optional(
      Type.Array(Type.Integer({ minimum: 1, maximum: 65535 }), {
        minItems: 1,
        maxItems: 1000,
        description: "the TCP ports defended, each on its own (default: every port, as one)",
      }),
    ),
    rate: Type.String({
      pattern: "^[0-9]+/s$",
      description: 'SYNs per second to one port above which it is under attack: "200/s"',
      errorMessage: 'must be SYNs per second like "200/s"',
    }),
    burst: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: 1000000,
        description:
          "SYNs over the rate a port takes at once before it is under attack (default: the rate)",
      }),
    ),
    hold: Type.Optional(
      Duration(
        "an attack ends when no SYN went over the rate for this long (default 10s): no flapping",
      ),
    ),
    mode: Type.Optional(
      ModeSchema(
        "prevent: under attack moat answers SYNs with its own cookies; detect: reports only",
      ),
    ),
  },
  { description: "SYN flood defence: SYN cookies answered by moat while a port is under attack" },
);

export const UdpAmplificationSchema = Section(
  {
    ports: Type.Optional(
      Type.Array(Type.Integer({ minimum: 1, maximum: 65535 }), {
        minItems: 1,
        maxItems: 256,
        description:
          "UDP source ports of amplifying services (default: 19 chargen, 53 DNS, 123 NTP, 161 SNMP, 389 CLDAP, 1900 SSDP, 11211 memcached)",
      }),
    ),
    rate_limit: RateLimitSchema,
    mode: Type.Optional(ModeSchema("prevent: drops what is over the limit; detect: reports it")),
  },
  {
    description:
      "UDP from amplification ports, limited per source address and source port before any rule",
  },
);

export const IcmpFloodSchema = Section(
  {
    max_size: Type.Integer({
      minimum: 28,
      maximum: 65535,
      description: "ICMP and ICMPv6 packets longer than this many bytes (IP header included)",
    }),
    mode: Type.Optional(ModeSchema("prevent: drops them; detect: reports them")),
  },
  { description: "oversized ICMP from remotes, before any rule" },
);

export const FloodSchema = Section(
  {
    syn: Type.Optional(SynFloodSchema),
    udp_amplification: Type.Optional(UdpAmplificationSchema),
    icmp: Type.Optional(IcmpFloodSchema),
  },
  { description: 'flood defence (docs/policy.md, "flood")' },
);

export type FloodDocument = Static<typeof FloodSchema>;

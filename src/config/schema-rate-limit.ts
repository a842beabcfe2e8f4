// The schema of a rule's `rate_limit` (docs/policy.md, "rate_limit") and of `scrub` (docs/policy.md,
// "Scrubbing"): what moat does to packets beyond judging connections.
import { Type, type Static } from "@sinclair/typebox";
import { Section, StringEnum } from "./schema-helpers.ts";

export const LIMIT_ALGORITHMS = [
  "token_bucket",
  "fixed_window",
  "sliding_window",
  "leaky_bucket",
] as const;

const Duration = (description: string) =>
  Type.Union([Type.String({ minLength: 1 }), Type.Integer({ minimum: 1 })], {
    description,
    errorMessage: 'must be a duration like "10s", "1m"',
  });

export const RateLimitSchema = Section(
  {
    rate: Type.String({
      pattern: "^[0-9]+/(s|m|h)$",
      description: 'packets per second, minute or hour from each source: "100/s", "600/m"',
      errorMessage: 'must be packets per period like "100/s", "600/m" or "1000/h"',
    }),
    burst: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: 1000000,
        description:
          "token_bucket and leaky_bucket: the bucket's size in packets (default: the rate's count for token_bucket, 1 for leaky_bucket)",
      }),
    ),
    algorithm: Type.Optional(
      StringEnum(
        LIMIT_ALGORITHMS,
        "token_bucket (default) | fixed_window | sliding_window | leaky_bucket",
      ),
    ),
    source: Type.Optional(
      Section(
        {
          ipv4: Type.Optional(Type.Integer({ minimum: 0, maximum: 32 })),
          ipv6: Type.Optional(Type.Integer({ minimum: 0, maximum: 128 })),
        },
        {
          description:
            "prefix lengths sources are grouped by (default 32 and 128: each address on its own)",
        },
      ),
    ),
    per_port: Type.Optional(
      Type.Boolean({
        description: "true = one limit per server port; default: one per rule",
      }),
    ),
    report_every: Type.Optional(
      Duration("over-limit reports: at most one per source per this (default 10s)"),
    ),
  },
  {
    description:
      "packets the remote sends on the connections this allow rule lets in, limited per source; over the limit: dropped (prevent) or reported (detect)",
  },
);

export type RateLimitDocument = Static<typeof RateLimitSchema>;

const Mss = Type.Integer({ minimum: 536, maximum: 65535 });

export const ScrubSchema = Section(
  {
    mss: Type.Optional(
      Type.Union([Mss, Section({ ipv4: Type.Optional(Mss), ipv6: Type.Optional(Mss) })], {
        description:
          "TCP SYN and SYN-ACK: an MSS option above this is lowered to it (a number for both families, or ipv4 / ipv6)",
        errorMessage: "must be an MSS of 536-65535, or { ipv4: N, ipv6: N }",
      }),
    ),
    min_ttl: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: 255,
        description:
          "packets passing either way whose IPv4 TTL or IPv6 hop limit is below this get it raised to it",
        errorMessage: "must be a TTL of 1-255",
      }),
    ),
    random_ip_id: Type.Optional(
      Type.Boolean({
        description:
          "IPv4 packets this host sends (not fragments) get a random identification field",
      }),
    ),
    clear_df: Type.Optional(
      Type.Boolean({
        description:
          "IPv4 packets passing either way lose their don't-fragment bit (this defeats path MTU discovery)",
      }),
    ),
  },
  { description: "changes moat makes to packets it lets through" },
);

// The schema of the policy's `anomaly` section (its meaning: anomaly-settings.ts).
import { Type } from "@sinclair/typebox";
import { ANOMALY_DETECTORS } from "./anomaly-detectors.ts";
import { List, Section, StringEnum } from "./schema-helpers.ts";

const Duration = (description: string) =>
  Type.Union([Type.Integer({ minimum: 1 }), Type.String({ minLength: 1 })], {
    description,
    errorMessage: 'must be a duration like "1d", "12h" or "90m", or a whole number of seconds',
  });

export const AnomalySchema = Section(
  {
    enabled: Type.Optional(Type.Boolean({ description: "run the detectors (default true)" })),
    detectors: Type.Optional(
      List(
        StringEnum(ANOMALY_DETECTORS),
        "the detectors that run (default all: new_destination, volume, beacon, dns)",
      ),
    ),
    baseline: Type.Optional(
      Duration("a destination stays known this long after its last use (default 14d)"),
    ),
    min_baseline: Type.Optional(
      Duration(
        "an identity is learned this long before anything about it is reported (default 1d)",
      ),
    ),
    cooldown: Type.Optional(
      Duration("the same anomaly is not reported again within this time (default 1d)"),
    ),
    volume_z: Type.Optional(
      Type.Number({
        minimum: 1,
        maximum: 50,
        description:
          "volume outliers: spreads (MAD of log values) above the median that count (default 5)",
      }),
    ),
    beacon_score: Type.Optional(
      Type.Number({
        minimum: 0.5,
        maximum: 1,
        description:
          "beacons: the regularity score (0..1) from which a series counts (default 0.8)",
      }),
    ),
    min_connections: Type.Optional(
      Type.Integer({
        minimum: 5,
        maximum: 64,
        description:
          "beacons: connections to one peer before its regularity is judged (default 20)",
      }),
    ),
    dns_names: Type.Optional(
      Type.Integer({
        minimum: 2,
        description:
          "DNS: distinct random-looking names under one domain in 10 minutes that count (default 10)",
      }),
    ),
    nxdomains: Type.Optional(
      Type.Integer({
        minimum: 2,
        description:
          "DNS: NXDOMAIN answers in 10 minutes that count, at least 10x the identity's usual (default 20)",
      }),
    ),
  },
  { description: "anomaly detection per identity over flow records and DNS queries" },
);

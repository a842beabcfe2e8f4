// The schema of `ids` (docs/policy.md, "ids"): signatures matched on the first bytes of flows.
import { Type } from "@sinclair/typebox";
import { IDS_DEFAULT_BYTES, IDS_MAX_BYTES } from "./ids-bytes.ts";
import { Section, StringEnum } from "./schema-helpers.ts";

const Signature = Type.String({
  minLength: 1,
  description:
    'a signature in moat\'s Suricata/Snort subset: alert tcp any any -> any 80 (msg:"..."; content:"..."; sid:1;)',
});

export const IdsSchema = Section(
  {
    rules: Type.Optional(
      Type.Array(Signature, { description: "signatures, one a string", maxItems: 100000 }),
    ),
    rules_file: Type.Optional(
      Type.Union([Type.String({ minLength: 1 }), Type.Array(Type.String({ minLength: 1 }))], {
        description:
          "files of signatures, one a line, # comments (absolute or relative to the policy's folder)",
      }),
    ),
    mode: Type.Optional(
      StringEnum(
        ["detect", "prevent"] as const,
        "detect (default, whatever the policy's mode): reports matches; prevent: drop and reject signatures cut their connection, after its bytes reached the socket",
      ),
    ),
    bytes: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: IDS_MAX_BYTES,
        description: `bytes of each direction of a flow matched (default ${IDS_DEFAULT_BYTES})`,
      }),
    ),
    sample: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: 1000000,
        description: "match 1 in this many flows (default 1: every flow)",
      }),
    ),
  },
  {
    description:
      "IDS signatures matched on the first bytes of each flow, in user space, reported as events",
  },
);

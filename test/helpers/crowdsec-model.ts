// A running policy whose only set, `cs`, is a CrowdSec bouncer's dynamic set: what the bouncer
// reads of the policy (the set's url, key file and poll interval).
import type { PolicyModel } from "../../src/config/index.ts";

export function crowdsecModel(url: string, keyFile: string, intervalSeconds = 1): PolicyModel {
  return {
    sets: new Map([
      [
        "cs",
        {
          name: "cs",
          kind: "empty",
          entries: [],
          pos: { file: "p", line: 1, col: 1, path: "sets.cs" },
          origin: { kind: "dynamic", crowdsec: { url, keyFile, intervalSeconds } },
        },
      ],
    ]),
  } as unknown as PolicyModel;
}

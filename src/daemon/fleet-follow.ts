// The fleet's policy follower as the running policy's `fleet` section asks for it: started with
// the daemon, replaced when a policy changes what it follows, stopped when a policy drops it.
// The nats client loads only when a policy has that section.
import type { PolicyModel } from "../config/index.ts";
import type { ApplyOutcome, PolicyFollower } from "../fleet/index.ts";
import { readSecretFile } from "../observe/index.ts";

export interface FleetFollowOptions {
  /** The policy file: errors naming it are reported under the key instead. */
  policyPath: string;
  /** The lifecycle's apply, the path `moat policy apply` takes. */
  apply: (text: string, who: string) => Promise<ApplyOutcome>;
  /** The running policy's generation. */
  generation: () => number;
  log: (line: string) => void;
}

export interface FleetFollow {
  /** Follows what `model` says (nothing, or the same bucket and key: no change). */
  update(model: PolicyModel): void;
  /** The follower running now, if any (status, tests). */
  readonly follower: Promise<PolicyFollower | null>;
  close(): Promise<void>;
}

export function fleetFollow(o: FleetFollowOptions): FleetFollow {
  let settings = "";
  let follower: Promise<PolicyFollower | null> = Promise.resolve(null);
  const stop = () => {
    const old = follower;
    follower = Promise.resolve(null);
    return old.then((f) => f?.close());
  };
  return {
    update(model) {
      const fleet = model.fleet?.value;
      const next = fleet?.policy ? JSON.stringify(fleet) : "";
      if (next === settings) return;
      settings = next;
      const previous = stop();
      if (!fleet?.policy) return;
      const { bucket, stateFile, signers } = fleet.policy;
      follower = (async () => {
        await previous;
        const { PolicyFollower, defaultHostName } = await import("../fleet/index.ts");
        let seed: string | undefined;
        try {
          if (fleet.nkeySeedFile) seed = readSecretFile(fleet.nkeySeedFile).toString("utf8");
        } catch (err) {
          o.log(`fleet: not following ${bucket}: ${(err as Error).message}`);
          return null;
        }
        const host = fleet.host ?? defaultHostName();
        return new PolicyFollower({
          connection: { url: fleet.url, host, ...(seed ? { seed } : {}) },
          host,
          bucket,
          stateFile,
          apply: o.apply,
          generation: o.generation,
          ...(signers ? { signers } : {}),
          fileName: o.policyPath,
          log: o.log,
        });
      })();
    },
    get follower() {
      return follower;
    },
    close: () => stop(),
  };
}

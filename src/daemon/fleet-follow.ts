// The fleet's policy follower as the running policy's `fleet` section asks for it: started with
// the daemon, replaced when a policy changes what it follows, stopped when a policy drops it.
// The nats client loads only when a policy has that section. A revision the host could not go on
// following with (its state directory or seed file failing their checks) is refused before it is
// applied: applied, it would leave the host following nothing.
import { readFileSync } from "node:fs";
import { dirname } from "node:path";
import type { TrialView } from "../api/index.ts";
import { parsePolicyWith, type FleetSettings, type PolicyModel } from "../config/index.ts";
import type { ApplyOutcome, PolicyFollower } from "../fleet/index.ts";
import { nodeHost, trustedDirectory } from "../host/index.ts";
import { readSecretFile } from "../observe/index.ts";
import type { RunningPolicy } from "./policy-lifecycle.ts";

export interface FleetFollowOptions {
  /** The policy file: errors naming it are reported under the key instead. */
  policyPath: string;
  /**
   * The lifecycle's apply, the path `moat policy apply` takes; `admit` is asked in the apply's
   * turn, against the policy running then.
   */
  apply: (text: string, who: string, admit: () => string | null) => Promise<ApplyOutcome>;
  /** The policy running now. */
  running: () => RunningPolicy;
  /**
   * The local policy on trial (`moat policy apply --confirm`), if one is: a revision that ends it
   * reverts to the confirmed policy, the file's, never to the unconfirmed trial. Without it, a
   * revision reverts to the policy running when it was applied.
   */
  onTrial?: () => TrialView | undefined;
  /**
   * How long an applied revision's report may take before it is reverted (default: the policy's
   * fleet.policy.report_within, else 60 s).
   */
  trialMs?: number;
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
      const { bucket, stateFile, signers, reportWithinSeconds } = fleet.policy;
      const trialMs =
        o.trialMs ?? (reportWithinSeconds === undefined ? undefined : reportWithinSeconds * 1000);
      follower = (async () => {
        await previous;
        const { PolicyFollower, defaultHostName, policyKey, verifyPolicy } =
          await import("../fleet/index.ts");
        let seed: string | undefined;
        try {
          seed = fleetSeed(fleet);
        } catch (err) {
          o.log(`fleet: not following ${bucket}: ${(err as Error).message}`);
          return null;
        }
        const host = fleet.host ?? defaultHostName();
        const key = policyKey(host);
        /** The running policy's fleet settings, if it still follows this bucket and key. */
        const following = (model: PolicyModel): FleetSettings["policy"] | null => {
          const now = model.fleet?.value;
          const same = now?.policy?.bucket === bucket && (now.host ?? defaultHostName()) === host;
          return same ? (now.policy ?? null) : null;
        };
        const running = o.running();
        const floor = signers ? verifyPolicy(running.text, { bucket, key }, signers, 0) : null;
        try {
          return new PolicyFollower({
            connection: { url: fleet.url, host, ...(seed ? { seed } : {}) },
            host,
            bucket,
            stateFile,
            apply: (text, who, admit) =>
              o.apply(text, who, () => admit() ?? unfollowable(text, o.policyPath)),
            runningText: () => o.running().text,
            revertText: () => confirmedText(o),
            ...(trialMs === undefined ? {} : { trialMs }),
            followed: () => {
              const now = following(o.running().model);
              return now ? (now.signers ? { signers: now.signers } : {}) : null;
            },
            ...(floor?.ok ? { signedFloor: floor.time } : {}),
            fileName: o.policyPath,
            log: o.log,
          });
        } catch (err) {
          o.log(`fleet: ${(err as Error).message}`);
          return null;
        }
      })();
    },
    get follower() {
      return follower;
    },
    close: () => stop(),
  };
}

/**
 * The policy that is in force unless a change replaces it: the running one, or while a local
 * policy is on trial, the policy file's (a trial is not saved to the file: it holds the confirmed
 * policy the trial reverts to). Undefined when the file cannot be read: nothing to revert to.
 */
function confirmedText(o: FleetFollowOptions): string | undefined {
  if (!o.onTrial?.()) return o.running().text;
  try {
    return readFileSync(o.policyPath, "utf8");
  } catch (err) {
    o.log(`fleet: the policy before the local trial is not readable: ${(err as Error).message}`);
    return undefined;
  }
}

/**
 * The seed the fleet section names (none: undefined), once its files pass their checks: the
 * state file's directory root's and closed to others (a user who could rename entries there
 * could put an older state back), the seed file root's and unreadable by others. Throws why not.
 */
function fleetSeed(fleet: FleetSettings): string | undefined {
  if (fleet.policy) {
    const { stateFile } = fleet.policy;
    trustedDirectory(dirname(stateFile), { what: "fleet state directory", create: true });
  }
  return fleet.nkeySeedFile ? readSecretFile(fleet.nkeySeedFile).toString("utf8") : undefined;
}

/**
 * Why a host that applied `text` could not follow the bucket it names (its files fail their
 * checks), or null. Text that does not parse is left to the apply, which refuses it with its
 * errors.
 */
function unfollowable(text: string, policyPath: string): string | null {
  let fleet: FleetSettings | undefined;
  try {
    fleet = parsePolicyWith(text, policyPath, nodeHost).fleet?.value;
  } catch {
    return null;
  }
  if (!fleet?.policy) return null;
  try {
    fleetSeed(fleet);
    return null;
  } catch (err) {
    return `the host could not follow ${fleet.policy.bucket} with this policy: ${(err as Error).message}`;
  }
}

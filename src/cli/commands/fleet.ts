// moat fleet: the fleet as its NATS JetStream cluster holds it, read and written there directly
// (no daemon needed): `events` reads the events stream across hosts, `status` shows each host's
// policy revision and report, `init` creates the stream and bucket, `put` rolls a policy out to
// a host. The nats client loads only when one of these runs.
import { UsageError, type Command } from "../command.ts";
import { FILTER_OPTIONS, FILTER_USAGE } from "../api/filters.ts";
import { connectTarget, fleetTarget, FLEET_OPTIONS, FLEET_USAGE } from "../fleet-target.ts";

const USAGE = `moat fleet events [--host NAME]... [--follow] [--json] [--limit N] [--since TIME]
  ${FILTER_USAGE}
moat fleet status [--host NAME]... [--json]
moat fleet put HOST FILE [--sign SEED_FILE] [--wait DURATION] [--json]
moat fleet sign HOST FILE --sign SEED_FILE [--bucket NAME] > SIGNED_FILE
moat fleet init [--replicas N] [--duplicate-window DURATION] [--max-age DURATION] [--json]
moat fleet nkey FILE
  ${FLEET_USAGE}
  events: the stored events of every host (or those named), oldest first; --since TIME (30s,
  10m, 2h, 1d or an ISO 8601 time) starts there, --limit N prints the last N; --follow then
  prints new ones until Ctrl-C (without --since: only new ones).
  status: per host its events, its last event, its policy key's revision, the revision it
  applied, and its last report (a refused revision with its errors).
  put: checks FILE as the daemon would, then writes it to HOST's policy key; --sign: signed
  with that nkey for HOST's key (hosts whose policy names fleet.policy.signers apply only
  signed revisions); --wait: prints the host's report on it (exit 1 if refused, superseded by
  a later revision the host took up instead, or none came in time).
  sign: checks FILE and prints it signed for HOST's key, connecting nowhere (sign offline,
  then put the signed file without --sign).
  init: creates (or updates) the events stream and the policy bucket, 3 replicas, a 2m
  duplicate window (it must cover the hosts' 30 s of retries).
  nkey: writes a new nkey seed to FILE (0600, never over an existing file) and prints its
  public key, which the server's configuration names (docs/fleet.md).`;

const ACTIONS = ["events", "status", "put", "sign", "init", "nkey"] as const;

export const fleetCommand: Command = {
  name: "fleet",
  summary: "events and policy of every host, through the fleet's NATS JetStream cluster",
  usage: USAGE,
  actions: [...ACTIONS],
  options: {
    ...FILTER_OPTIONS,
    ...FLEET_OPTIONS,
    host: { type: "string", multiple: true },
    follow: { type: "boolean", short: "f" },
    json: { type: "boolean" },
    limit: { type: "string" },
    since: { type: "string" },
    wait: { type: "string" },
    sign: { type: "string" },
    replicas: { type: "string" },
    "duplicate-window": { type: "string" },
    "max-age": { type: "string" },
  },
  async run({ values, positionals }, io) {
    const [action, ...rest] = positionals;
    if (!ACTIONS.includes(action as (typeof ACTIONS)[number]))
      throw new UsageError(`moat fleet takes ${ACTIONS.join(", ")}\nusage: ${USAGE}`);
    if (action === "nkey") return (await import("./fleet-rollout.ts")).newNkey(rest, io);
    if (action === "sign") return (await import("./fleet-rollout.ts")).signFile(rest, values, io);
    const target = fleetTarget(values);
    const hosts = Array.isArray(values.host) ? values.host : [];
    const nc = await connectTarget(target, values.follow === true);
    try {
      switch (action) {
        case "events":
          await (
            await import("./fleet-events.ts")
          ).printEvents(nc, { ...target, hosts }, values, io);
          return 0;
        case "status":
          await (
            await import("./fleet-status.ts")
          ).printStatus(nc, { ...target, hosts }, values.json === true, io.out);
          return 0;
        case "put":
          return await (await import("./fleet-rollout.ts")).putPolicy(nc, target, rest, values, io);
        default:
          return await (await import("./fleet-rollout.ts")).initFleet(nc, target, values, io);
      }
    } finally {
      await nc.close();
    }
  },
};

// Where `moat fleet` connects and what it reads: the servers, the nkey, the stream, the bucket
// and the subject prefix, from the command line (defaults as docs/fleet.md sets the fleet up).
import { readFileSync } from "node:fs";
import type { NatsConnection } from "nats";
import { UsageError, type OptionValues } from "./command.ts";

export const FLEET_OPTIONS = {
  server: { type: "string", multiple: true },
  nkey: { type: "string" },
  stream: { type: "string" },
  bucket: { type: "string" },
  subject: { type: "string" },
} as const;

export const FLEET_USAGE =
  "[--server URL]... [--nkey SEED_FILE] [--stream NAME] [--bucket NAME] [--subject PREFIX]\n" +
  "  --server: a server of the fleet's NATS cluster (default nats://127.0.0.1:4222);\n" +
  "  --nkey: a file holding the nkey seed to connect with; --stream (default MOAT_EVENTS),\n" +
  "  --bucket (default moat-policy), --subject (default moat.events): as docs/fleet.md sets up.";

export interface FleetTarget {
  servers: string[];
  seed?: string;
  stream: string;
  bucket: string;
  subject: string;
}

export function fleetTarget(values: OptionValues): FleetTarget {
  const str = (k: string, d: string) => (typeof values[k] === "string" ? values[k] : d);
  const servers = Array.isArray(values.server) ? values.server : [];
  let seed: string | undefined;
  if (typeof values.nkey === "string") {
    try {
      seed = readFileSync(values.nkey, "utf8").trim();
    } catch (err) {
      throw new UsageError(`--nkey: ${(err as Error).message}`, 1);
    }
  }
  return {
    servers: servers.length ? servers : ["nats://127.0.0.1:4222"],
    ...(seed ? { seed } : {}),
    stream: str("stream", "MOAT_EVENTS"),
    bucket: str("bucket", "moat-policy"),
    subject: str("subject", "moat.events"),
  };
}

/** Connects (the nats client loads here); `follow`: reconnect for as long as the command runs. */
export async function connectTarget(t: FleetTarget, follow = false): Promise<NatsConnection> {
  const { connectionOptions } = await import("../fleet/index.ts");
  const { connect } = await import("nats");
  try {
    return await connect({
      ...connectionOptions({ url: t.servers, ...(t.seed ? { seed: t.seed } : {}) }),
      maxReconnectAttempts: follow ? -1 : 0,
      timeout: 5000,
    });
  } catch (err) {
    throw new UsageError(`cannot reach ${t.servers.join(", ")}: ${(err as Error).message}`, 1);
  }
}

/** The host an event's subject names. */
export const hostOfSubject = (subject: string, prefix: string): string =>
  subject.slice(prefix.length + 1);

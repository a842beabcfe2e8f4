// The sinks a policy's `otel` and `event_publisher` sections ask for. The daemon adds these to
// the pipeline beside its own (audit log, history, API subscribers) at start and on reload.
import type { PolicyModel } from "../config/model.ts";
import type { EventSink, SnapshotSource } from "./sink.ts";
import { createOtelExport, type OtelExport } from "./otel/sink.ts";
import { defaultHostName } from "../fleet/index.ts";
import { jetstreamPublisher } from "./publish/jetstream.ts";
import { natsPublisher } from "./publish/nats.ts";
import { readSecretFile } from "./publish/secret.ts";
import { webhookPublisher } from "./publish/webhook.ts";

export interface PolicySinks {
  sinks: EventSink[];
  /** Stops timers (metric readers) and closes connections; the pipeline closes the sinks. */
  close(): Promise<void>;
}

/**
 * Builds the sinks; throws (and starts nothing) when one cannot be set up, e.g. a webhook key
 * file that others can read, so the daemon refuses that policy and keeps the running one.
 */
export function sinksFromPolicy(model: PolicyModel, snapshot: SnapshotSource): PolicySinks {
  const publisher = model.eventPublisher?.value;
  // every key first: nothing is started if one is refused
  const hooks = (publisher?.webhooks ?? []).map((hook) => ({
    ...hook,
    secret: hook.secretFile === undefined ? undefined : readSecretFile(hook.secretFile),
  }));

  const fleet = model.fleet?.value;
  const fleetSeed =
    fleet?.events && fleet.nkeySeedFile !== undefined
      ? readSecretFile(fleet.nkeySeedFile).toString("utf8")
      : undefined;

  const sinks: EventSink[] = [];
  let otel: OtelExport | undefined;
  if (model.otel) {
    otel = createOtelExport({ endpoint: model.otel.value.endpoint, snapshot });
    sinks.push(otel.sink);
  }
  const context = { snapshot };
  for (const hook of hooks)
    sinks.push(
      webhookPublisher(
        {
          url: hook.url,
          ...(hook.types ? { types: hook.types } : {}),
          ...(hook.secret ? { secret: hook.secret } : {}),
        },
        context,
      ),
    );
  if (publisher?.nats) sinks.push(natsPublisher(publisher.nats, context));
  if (fleet?.events) {
    const host = fleet.host ?? defaultHostName();
    const connection = { url: fleet.url, host, ...(fleetSeed ? { seed: fleetSeed } : {}) };
    sinks.push(jetstreamPublisher({ connection, host, subject: fleet.events.subject }, context));
  }

  return {
    sinks,
    async close() {
      // each close is idempotent: the pipeline may have closed these sinks already
      await Promise.allSettled([otel?.shutdown(), ...sinks.map((s) => s.close())]);
    },
  };
}

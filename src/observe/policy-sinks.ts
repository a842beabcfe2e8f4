// The sinks a policy's `otel` and `event_publisher` sections ask for. The daemon adds these to
// the pipeline beside its own (audit log, history, API subscribers) at start and on reload.
// OpenTelemetry's SDK and the NATS client are loaded only for a policy that uses them
// (loadPolicySinks, before the policy is installed): a daemon without them is ~20 MB smaller.
import type { PolicyModel } from "../config/model.ts";
import type { EventSink, SnapshotSource } from "./sink.ts";
import type { OtelExport } from "./otel/sink.ts";
import { defaultHostName } from "../fleet/names.ts";
import { readSecretFile } from "./publish/secret.ts";
import { webhookPublisher } from "./publish/webhook.ts";

let otelModule: typeof import("./otel/sink.ts") | undefined;
let natsModule: typeof import("./publish/nats.ts") | undefined;
let jetstreamModule: typeof import("./publish/jetstream.ts") | undefined;

/** Loads the code of the sinks `model` asks for (once each); sinksFromPolicy needs it loaded. */
export async function loadPolicySinks(model: PolicyModel): Promise<void> {
  if (model.otel) otelModule ??= await import("./otel/sink.ts");
  if (model.eventPublisher?.value.nats) natsModule ??= await import("./publish/nats.ts");
  if (model.fleet?.value.events) jetstreamModule ??= await import("./publish/jetstream.ts");
}

function loaded<T>(module: T | undefined, what: string): T {
  if (!module) throw new Error(`${what} is not loaded (loadPolicySinks first)`);
  return module;
}

export interface PolicySinks {
  sinks: EventSink[];
  /** The OpenTelemetry export and the `otel` settings it was made with, for the next policy. */
  otel?: { settings: string; export: OtelExport };
  /**
   * Stops timers (metric readers) and closes connections (an export a newer policy shares stops
   * with that one); the pipeline closes the sinks.
   */
  close(): Promise<void>;
}

/**
 * Builds the sinks; throws (and starts nothing) when one cannot be set up, e.g. a webhook key
 * file that others can read, so the daemon refuses that policy and keeps the running one.
 * `running` (the running policy's sinks, same snapshot source): an unchanged `otel` section keeps
 * its export, so a backend sees no counter reset and open connections keep their spans.
 */
export function sinksFromPolicy(
  model: PolicyModel,
  snapshot: SnapshotSource,
  running?: PolicySinks,
): PolicySinks {
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
  if (publisher?.nats)
    sinks.push(loaded(natsModule, "the NATS publisher").natsPublisher(publisher.nats, context));
  if (fleet?.events) {
    const host = fleet.host ?? defaultHostName();
    const connection = { url: fleet.url, host, ...(fleetSeed ? { seed: fleetSeed } : {}) };
    const { jetstreamPublisher } = loaded(jetstreamModule, "the fleet's event stream");
    sinks.push(jetstreamPublisher({ connection, host, subject: fleet.events.subject }, context));
  }

  // last, so no sink above can throw and leave it (or a handle on a shared one) running
  let otel: PolicySinks["otel"];
  if (model.otel) {
    const settings = JSON.stringify(model.otel.value);
    const kept = running?.otel?.settings === settings ? running.otel.export.share() : undefined;
    const otelExport =
      kept ??
      loaded(otelModule, "the OpenTelemetry export").createOtelExport({
        endpoint: model.otel.value.endpoint,
        snapshot,
      });
    otel = { settings, export: otelExport };
    sinks.unshift(otelExport.sink);
  }

  return {
    sinks,
    ...(otel ? { otel } : {}),
    async close() {
      // each close is idempotent: the pipeline may have closed these sinks already
      await Promise.allSettled([otel?.export.shutdown(), ...sinks.map((s) => s.close())]);
    },
  };
}

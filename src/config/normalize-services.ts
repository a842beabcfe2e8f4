// attach, logging, otel, event_publisher and api: the daemon's settings, checked for what a value
// must look like beyond its type (absolute paths, URLs, a token for TCP listeners).

import { isPublicUserNkey } from "./nkey-public.ts";
import type { CheckContext } from "./check-context.ts";
import type { PolicyModel } from "./model.ts";
import type { PolicyDocument } from "./schema.ts";
import type { PathSegment } from "./yaml-source.ts";
import { parseDuration } from "./duration.ts";
import { parseSize } from "./size.ts";

type Services = Pick<PolicyModel, "logging" | "otel" | "eventPublisher" | "api" | "fleet">;

/** Where the fleet's policy follower keeps the last applied revision, unless told. */
export const FLEET_STATE_FILE = "/var/lib/moat/fleet-policy.json";
/** A subject token and a key-value key part: no dots, wildcards or spaces. */
const HOST_NAME = /^[A-Za-z0-9_-]+$/;

const IFNAME_MAX = 15; // IFNAMSIZ - 1

export function checkServices(ctx: CheckContext, doc: PolicyDocument): Services {
  const services: Services = { logging: {} };
  const interfaces = ctx.clean(["attach", "interfaces"]) ? doc.attach?.interfaces : undefined;
  interfaces?.forEach((entry, i) => {
    const name = typeof entry === "string" ? entry : entry.name;
    const at =
      typeof entry === "string" ? ["attach", "interfaces", i] : ["attach", "interfaces", i, "name"];
    if (/[\s/]/.test(name)) ctx.error(at, `'${name}' is not an interface name or glob`);
    else if (!/[*?[]/.test(name) && name.length > IFNAME_MAX)
      ctx.error(at, `'${name}' is longer than ${IFNAME_MAX} characters, the kernel's limit`);
  });
  if (doc.attach?.cgroup !== undefined && ctx.clean(["attach", "cgroup"]))
    absolutePath(ctx, doc.attach.cgroup, ["attach", "cgroup"]);

  const audit = doc.logging?.audit;
  if (audit && ctx.clean(["logging", "audit"])) {
    absolutePath(ctx, audit.path, ["logging", "audit", "path"]);
    services.logging.audit = { value: { path: audit.path }, pos: ctx.pos(["logging", "audit"]) };
  }
  const history = doc.logging?.history;
  if (history && ctx.clean(["logging", "history"])) {
    const value: NonNullable<PolicyModel["logging"]["history"]>["value"] = {};
    if (history.path !== undefined) {
      absolutePath(ctx, history.path, ["logging", "history", "path"]);
      value.path = history.path;
    }
    if (history.max_age !== undefined) {
      const age = parseDuration(history.max_age);
      if (age.ok) value.maxAgeSeconds = age.value;
      else ctx.error(["logging", "history", "max_age"], age.error);
    }
    if (history.max_size !== undefined) {
      const size = parseSize(history.max_size);
      if (size.ok) value.maxBytes = size.value;
      else ctx.error(["logging", "history", "max_size"], size.error);
    }
    if (history.flow_interval !== undefined) {
      const interval = parseDuration(history.flow_interval);
      if (interval.ok) value.flowIntervalSeconds = interval.value;
      else ctx.error(["logging", "history", "flow_interval"], interval.error);
    }
    services.logging.history = { value, pos: ctx.pos(["logging", "history"]) };
  }
  if (doc.otel && ctx.clean(["otel"])) {
    url(ctx, doc.otel.endpoint, ["otel", "endpoint"], ["http:", "https:"]);
    services.otel = { value: { endpoint: doc.otel.endpoint }, pos: ctx.pos(["otel"]) };
  }
  const publisher = doc.event_publisher;
  if (publisher && ctx.clean(["event_publisher"])) {
    publisher.webhooks?.forEach((hook, i) => {
      const at = ["event_publisher", "webhooks", i, "url"];
      if (url(ctx, hook.url, at, ["http:", "https:"])) noCredentials(ctx, hook.url, at);
      if (hook.secret_file !== undefined)
        absolutePath(ctx, hook.secret_file, ["event_publisher", "webhooks", i, "secret_file"]);
    });
    if (publisher.nats)
      url(ctx, publisher.nats.url, ["event_publisher", "nats", "url"], ["nats:", "tls:"]);
    services.eventPublisher = {
      value: {
        webhooks: (publisher.webhooks ?? []).map(({ url, types, secret_file: secretFile }) => ({
          url,
          ...(types ? { types } : {}),
          ...(secretFile !== undefined ? { secretFile } : {}),
        })),
        ...(publisher.nats ? { nats: publisher.nats } : {}),
      },
      pos: ctx.pos(["event_publisher"]),
    };
  }
  if (doc.api && ctx.clean(["api"])) {
    const { listen, token_file: tokenFile } = doc.api;
    if (listen.startsWith("unix:")) absolutePath(ctx, listen.slice(5), ["api", "listen"]);
    else if (!/^(?:tcp:)?(\[[0-9a-fA-F:.]+\]|[^:\s]+):\d{1,5}$/.test(listen))
      ctx.error(["api", "listen"], `'${listen}' is not unix:/PATH or HOST:PORT`);
    else if (tokenFile === undefined)
      ctx.error(
        ["api", "listen"],
        "a TCP listener needs 'token_file' (the API is root-only otherwise)",
      );
    if (tokenFile !== undefined) absolutePath(ctx, tokenFile, ["api", "token_file"]);
    const tls = doc.api.tls;
    if (tls) {
      absolutePath(ctx, tls.cert, ["api", "tls", "cert"]);
      absolutePath(ctx, tls.key, ["api", "tls", "key"]);
      if (listen.startsWith("unix:"))
        ctx.error(["api", "tls"], "TLS is for TCP listeners; a unix socket needs none");
    }
    services.api = {
      value: {
        listen,
        ...(tokenFile !== undefined ? { tokenFile } : {}),
        ...(tls ? { tls: { cert: tls.cert, key: tls.key } } : {}),
      },
      pos: ctx.pos(["api"]),
    };
  }
  if (doc.fleet && ctx.clean(["fleet"])) services.fleet = checkFleet(ctx, doc.fleet);
  return services;
}

function checkFleet(
  ctx: CheckContext,
  fleet: NonNullable<PolicyDocument["fleet"]>,
): NonNullable<PolicyModel["fleet"]> {
  url(ctx, fleet.url, ["fleet", "url"], ["nats:", "tls:"]);
  if (fleet.host !== undefined && !HOST_NAME.test(fleet.host))
    ctx.error(["fleet", "host"], `'${fleet.host}' must be letters, digits, '_' and '-' only`);
  if (fleet.nkey_seed_file !== undefined)
    absolutePath(ctx, fleet.nkey_seed_file, ["fleet", "nkey_seed_file"]);
  const subject = fleet.events?.subject ?? "moat.events";
  if (!/^[^\s*>]+$/.test(subject) || subject.split(".").includes(""))
    ctx.error(
      ["fleet", "events", "subject"],
      `'${subject}' is not a NATS subject without wildcards`,
    );
  // events there would land in the server's API or a bucket's keys ($KV.moat-policy.policy.web1)
  else if (subject.startsWith("$"))
    ctx.error(
      ["fleet", "events", "subject"],
      `'${subject}' starts with '$': subjects starting with '$' are the server's own (JetStream's API, a bucket's keys)`,
    );
  const policy = fleet.policy;
  if (policy && !/^[A-Za-z0-9_-]+$/.test(policy.bucket))
    ctx.error(["fleet", "policy", "bucket"], `'${policy.bucket}' is not a bucket name`);
  if (policy?.state_file !== undefined)
    absolutePath(ctx, policy.state_file, ["fleet", "policy", "state_file"]);
  const reportWithin =
    policy?.report_within === undefined ? undefined : parseDuration(policy.report_within);
  if (reportWithin && !reportWithin.ok)
    ctx.error(["fleet", "policy", "report_within"], reportWithin.error);
  else if (reportWithin && (reportWithin.value < 5 || reportWithin.value > 3600))
    ctx.error(
      ["fleet", "policy", "report_within"],
      `${policy?.report_within} is out of range: from 5s to 1h (a revision on trial for less could be reverted by a slow server, for more leaves a host cut off that long)`,
    );
  policy?.signers?.forEach((key, i) => {
    if (!isPublicUserNkey(key))
      ctx.error(
        ["fleet", "policy", "signers", i],
        `'${key}' is not a public user nkey (U and 55 of A-Z, 2-7, with its checksum; moat fleet nkey prints one)`,
      );
  });
  return {
    value: {
      url: fleet.url,
      ...(fleet.host !== undefined ? { host: fleet.host } : {}),
      ...(fleet.nkey_seed_file !== undefined ? { nkeySeedFile: fleet.nkey_seed_file } : {}),
      ...(fleet.events ? { events: { subject } } : {}),
      ...(policy
        ? {
            policy: {
              bucket: policy.bucket,
              stateFile: policy.state_file ?? FLEET_STATE_FILE,
              ...(policy.signers ? { signers: policy.signers } : {}),
              ...(reportWithin?.ok ? { reportWithinSeconds: reportWithin.value } : {}),
            },
          }
        : {}),
    },
    pos: ctx.pos(["fleet"]),
  };
}

function absolutePath(ctx: CheckContext, path: string, at: PathSegment[]): void {
  if (!path.startsWith("/")) ctx.error(at, `'${path}' must be an absolute path`);
}

/** True when `text` is a URL of one of `schemes`; an error at `at` otherwise. */
function url(ctx: CheckContext, text: string, at: PathSegment[], schemes: string[]): boolean {
  let scheme: string;
  try {
    scheme = new URL(text).protocol;
  } catch {
    ctx.error(at, `'${text}' is not a URL`);
    return false;
  }
  if (schemes.includes(scheme)) return true;
  ctx.error(
    at,
    `'${text}' must be a ${schemes.map((s) => s.replace(":", "://")).join(" or ")} URL`,
  );
  return false;
}

/**
 * A webhook never sends user:password@ (fetch refuses such a URL): the error says so without
 * repeating them, and names what authenticates a delivery.
 */
function noCredentials(ctx: CheckContext, text: string, at: PathSegment[]): void {
  const u = new URL(text);
  if (!u.username && !u.password) return;
  u.username = "";
  u.password = "";
  ctx.error(
    at,
    `'${u.href}' must not hold a user name or password: moat does not send them; sign deliveries with secret_file (an HMAC-SHA256 key the receiver checks, docs/observability.md "Webhooks")`,
  );
}

// Which parts of a valid policy the running datapath cannot enforce yet. The daemon and `moat
// check` refuse such a policy (an unenforced rule would be a silent hole).

import { diagnostic, PolicyError, type Diagnostic, type SourcePos } from "./diagnostics.ts";
import type { AddressEntry, PolicyModel, Rule } from "./model.ts";

/** Every feature name `unsupportedFeatures` knows, and where its enforcement comes from. */
export const FEATURES = {
  layer3: "packet hooks",
  "layer3.hostnames": "moat's DNS proxy learns the addresses of names",
  layer4: "packet hooks",
  "layer4.max_duration": "connection tracking (a reset after max_duration)",
  process: "the socket hooks (connect and sendmsg, egress)",
  interface: "the socket hooks with the route mirror (egress)",
  "layer7.dns": "moat's DNS proxy (names) and ports (over_tls)",
  "layer7.http": "moat's relay (egress, processes under attach.cgroup)",
  "layer7.tls": "moat's relay (egress, processes under attach.cgroup)",
  "layer7.ssh": "moat's relay (egress) and moat ssh-authkeys (ingress)",
  "layer7.ssh.logins": "moat ssh-authkeys, sshd's AuthorizedKeysCommand (ingress client_key, user)",
  redirect: "the socket hooks (connect and sendmsg, egress)",
  defaults: "packet hooks",
  "attach.interfaces": "packet hooks",
  "attach.cgroup": "the socket hooks (connect and sendmsg)",
  sets: "packet hooks",
  "logging.audit": "the audit log",
  "logging.history": "the event history store",
  otel: "OpenTelemetry export",
  event_publisher: "webhooks and NATS",
  api: "the API",
  fleet: "JetStream events and the policy bucket",
} as const;

export type Feature = keyof typeof FEATURES;

/** What this version's datapath enforces. */
export const DATAPATH_FEATURES: ReadonlySet<Feature> = new Set<Feature>([
  "layer3",
  "layer3.hostnames",
  "layer7.dns",
  "layer7.http",
  "layer7.tls",
  "layer7.ssh",
  "layer7.ssh.logins",
  "layer4",
  "layer4.max_duration",
  "defaults",
  "attach.interfaces",
  "attach.cgroup",
  "process",
  "interface",
  "redirect",
  "logging.audit",
  "logging.history",
  "sets",
  "api",
  "otel",
  "event_publisher",
  "fleet",
]);

interface Use {
  feature: Feature;
  pos: SourcePos;
  /** How the message names what is used, e.g. "'process'" or "'*.example.org' (a hostname)". */
  what: string;
}

/** One error per use of a feature not in `supported`, at the position it is written. */
export function unsupportedFeatures(
  model: PolicyModel,
  supported: ReadonlySet<string>,
): Diagnostic[] {
  return featureUses(model, supported).map((use) =>
    diagnostic(
      use.pos,
      `${use.what} is not supported yet by this version of moat (${FEATURES[use.feature]})`,
    ),
  );
}

/** Throws PolicyError listing every unsupported use; for the daemon's load and reload. */
export function assertSupported(model: PolicyModel, supported: ReadonlySet<string>): void {
  const problems = unsupportedFeatures(model, supported);
  if (problems.length > 0) throw new PolicyError(problems);
}

/** An ingress rule judging logins by key or name (moat ssh-authkeys), not the relay's servers. */
const sshLogins = (rule: Rule): boolean =>
  rule.direction === "ingress" && !!(rule.layer7?.ssh?.client_key || rule.layer7?.ssh?.user);

/**
 * The uses of features not in `supported`, in the model's order. A supported one is passed over
 * before anything is made for it: a 100k-rule policy uses a few features hundreds of thousands of
 * times, all of them supported.
 */
function featureUses(model: PolicyModel, supported: ReadonlySet<string>): Use[] {
  const uses: Use[] = [];
  const use = (feature: Feature, pos: SourcePos | undefined, what?: string) => {
    if (pos && !supported.has(feature)) uses.push({ feature, pos, what: what ?? `'${feature}'` });
  };
  // a set file's lines are never quoted (it may be any file root can read)
  const hostnames = (entries: AddressEntry[], fromFile = false) => {
    if (supported.has("layer3.hostnames")) return;
    for (const e of entries)
      if (e.kind === "hostname")
        use("layer3.hostnames", e.pos, fromFile ? "a hostname" : `'${e.text}' (a hostname)`);
  };
  use("defaults", model.defaults.pos);
  use("attach.cgroup", model.attach.cgroup?.pos);
  for (const set of model.sets.values()) {
    use("sets", set.pos);
    if (set.kind === "address") hostnames(set.entries, set.file !== undefined);
  }
  for (const rule of model.rules) {
    use("layer3", rule.layer3?.pos);
    hostnames(rule.layer3?.remote?.entries ?? []);
    hostnames(rule.layer3?.local?.entries ?? []);
    use("layer4", rule.layer4?.pos);
    use("layer4.max_duration", rule.layer4?.maxDuration?.pos, "'max_duration'");
    use("process", rule.process?.pos);
    use("interface", rule.interface?.pos);
    const layer7 = rule.layer7;
    if (layer7)
      for (const proto of ["dns", "http", "tls", "ssh"] as const)
        use(
          proto === "ssh" && sshLogins(rule) ? "layer7.ssh.logins" : `layer7.${proto}`,
          layer7[proto]?.pos,
        );
  }
  for (const redirect of model.redirects) use("redirect", redirect.pos);
  use("logging.audit", model.logging.audit?.pos, "'logging.audit'");
  use("logging.history", model.logging.history?.pos, "'logging.history'");
  use("otel", model.otel?.pos);
  use("event_publisher", model.eventPublisher?.pos);
  use("api", model.api?.pos);
  use("fleet", model.fleet?.pos);
  return uses;
}

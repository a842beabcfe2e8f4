// moat fleet init and put: what an operator does with the admin's key. `init` creates the events
// stream and the policy bucket (replicated, with the duplicate window the hosts' retries need);
// `put` checks a policy as the daemon would, writes it to a host's key and, with --wait, prints
// what the host reported for that revision.
import { readFileSync } from "node:fs";
import type { NatsConnection } from "nats";
import { UsageError, type Io, type OptionValues } from "../command.ts";
import { EXIT } from "../exit-codes.ts";
import { jsonLine } from "../json-line.ts";
import { printable } from "../../config/index.ts";
import { parseDuration } from "../time-args.ts";
import type { FleetTarget } from "../fleet-target.ts";
import type { FleetStatus } from "../../fleet/index.ts";

/** A new user nkey: its seed into `file` (created 0600, never overwritten), its public key out. */
export async function newNkey(positionals: string[], io: Io): Promise<number> {
  const [file] = positionals;
  if (!file || positionals.length > 1) throw new UsageError("usage: moat fleet nkey FILE");
  const { nkeys } = await import("nats");
  const kp = nkeys.createUser();
  const { writeFileSync } = await import("node:fs");
  try {
    writeFileSync(file, new TextDecoder().decode(kp.getSeed()) + "\n", { mode: 0o600, flag: "wx" });
  } catch (err) {
    throw new UsageError(`${file}: ${(err as Error).message}`, 1);
  }
  io.out(kp.getPublicKey());
  return EXIT.ok;
}

/** The hosts retry an event for 30 s: the window is 2 min unless told (docs/fleet.md). */
const DUPLICATE_WINDOW = "2m";

export async function initFleet(
  nc: NatsConnection,
  t: FleetTarget,
  values: OptionValues,
  io: Io,
): Promise<number> {
  const replicas = typeof values.replicas === "string" ? Number(values.replicas) : 3;
  if (!Number.isInteger(replicas) || replicas < 1 || replicas > 5)
    throw new UsageError("--replicas takes 1 to 5");
  const windowMs = parseDuration(
    typeof values["duplicate-window"] === "string" ? values["duplicate-window"] : DUPLICATE_WINDOW,
    "--duplicate-window",
  );
  const { RETRY_HORIZON_MS } = await import("../../fleet/index.ts");
  if (windowMs < RETRY_HORIZON_MS)
    throw new UsageError(
      `--duplicate-window must cover the hosts' retry horizon (${RETRY_HORIZON_MS / 1000} s)`,
    );
  const maxAgeMs =
    typeof values["max-age"] === "string" ? parseDuration(values["max-age"], "--max-age") : 0;
  const jsm = await nc.jetstreamManager();
  const config = {
    name: t.stream,
    subjects: [`${t.subject}.>`],
    num_replicas: replicas,
    duplicate_window: windowMs * 1e6,
    ...(maxAgeMs ? { max_age: maxAgeMs * 1e6 } : {}),
  };
  const exists = await jsm.streams.info(t.stream).catch(() => null);
  if (exists) await jsm.streams.update(t.stream, config);
  else await jsm.streams.add(config);
  await nc.jetstream().views.kv(t.bucket, { replicas, history: 10 });
  const what = `stream ${t.stream} (${t.subject}.>, ${replicas} replicas, duplicate window ${windowMs / 1000} s) and bucket ${t.bucket}`;
  if (values.json)
    io.out(
      jsonLine({ stream: t.stream, bucket: t.bucket, replicas, duplicate_window_ms: windowMs }),
    );
  else io.out(`${exists ? "updated" : "created"} ${what}`);
  return EXIT.ok;
}

/**
 * FILE's text as HOST's policy key gets it: checked as the daemon would (errors printed, null),
 * signed for that key with --sign.
 */
async function rolloutText(
  host: string,
  file: string,
  bucket: string,
  values: OptionValues,
  io: Io,
): Promise<string | null> {
  if (!/^[A-Za-z0-9_-]+$/.test(host))
    throw new UsageError(`'${host}': a host name is letters, digits, '_' and '-' only`);
  const seed = typeof values.sign === "string" ? readSeed(values.sign) : null;
  // the daemon's own acceptance: what passes here, the host applies (its set files aside)
  const { acceptPolicyFileAsync, readPolicyFileTextAsync } = await import("../../host/index.ts");
  const { diagnosticLines } = await import("../../config/index.ts");
  const { diagnostics, policy } = await acceptPolicyFileAsync(file);
  const errors = diagnostics.filter((d) => d.severity === "error");
  if (!policy || errors.length) {
    for (const line of diagnosticLines(errors, file)) io.err(line);
    io.err(`${file}: not written to ${bucket}: ${errors.length} errors`);
    return null;
  }
  const text = await readPolicyFileTextAsync(file);
  if (seed === null) return text;
  const { policyKey, signPolicy } = await import("../../fleet/index.ts");
  // a last line ended, so the signed text prints and saves as it was signed
  const ended = text.endsWith("\n") ? text : `${text}\n`;
  return signPolicy(ended, seed, { bucket, key: policyKey(host) }, Date.now());
}

/** moat fleet sign: the signed text on stdout, made where no server is reachable (offline). */
export async function signFile(
  positionals: string[],
  values: OptionValues,
  io: Io,
): Promise<number> {
  const [host, file] = positionals;
  if (!host || !file || positionals.length > 2 || typeof values.sign !== "string")
    throw new UsageError("usage: moat fleet sign HOST FILE --sign SEED_FILE [--bucket NAME]");
  const bucket = typeof values.bucket === "string" ? values.bucket : "moat-policy";
  const text = await rolloutText(host, file, bucket, values, io);
  if (text === null) return EXIT.failed;
  io.out(text.endsWith("\n") ? text.slice(0, -1) : text);
  return EXIT.ok;
}

export async function putPolicy(
  nc: NatsConnection,
  t: FleetTarget,
  positionals: string[],
  values: OptionValues,
  io: Io,
): Promise<number> {
  const [host, file] = positionals;
  if (!host || !file || positionals.length > 2)
    throw new UsageError("usage: moat fleet put HOST FILE [--sign SEED_FILE] [--wait DURATION]");
  const text = await rolloutText(host, file, t.bucket, values, io);
  if (text === null) return EXIT.failed;
  const tooLarge = payloadError(nc, text);
  if (tooLarge) {
    io.err(`${file}: not written to ${t.bucket}: ${tooLarge}`);
    return EXIT.failed;
  }
  const { policyKey, statusKey } = await import("../../fleet/index.ts");
  const kv = await nc.jetstream().views.kv(t.bucket, { bindOnly: true });
  const revision = await kv.put(policyKey(host), text);
  const waitMs = typeof values.wait === "string" ? parseDuration(values.wait, "--wait") : undefined;
  if (waitMs === undefined) {
    if (values.json) io.out(jsonLine({ key: policyKey(host), revision }));
    else io.out(`${t.bucket}/${policyKey(host)} revision ${revision}`);
    return EXIT.ok;
  }
  const answer = await reportFor(nc, t.bucket, statusKey(host), revision, waitMs);
  const where = `${t.bucket}/${policyKey(host)} revision ${revision}`;
  if (values.json)
    io.out(jsonLine({ key: policyKey(host), revision, ...answerJson(host, answer) }));
  else if (!answer) io.out(`${where}: no report from ${host} in ${waitMs / 1000} s`);
  else if (answer === NOT_MOAT) io.out(`${where}: ${host}'s report is not moat's (not read)`);
  else if ("superseded" in answer) {
    const later = answer.superseded;
    io.out(
      `${where}: superseded: ${host} took up revision ${later.revision} (${printable(later.result)}, generation ${later.generation}) instead`,
    );
  } else {
    // the host writes its own report: its text is printed escaped
    io.out(`${where}: ${printable(answer.result)} by ${host} (generation ${answer.generation})`);
    for (const e of answer.errors) io.out(printable(e));
  }
  return typeof answer === "object" && answer && "result" in answer && answer.result === "applied"
    ? EXIT.ok
    : EXIT.failed;
}

/**
 * Why the server would not take `text` (its size against the server's max_payload), or null.
 * The client's own error names neither size.
 */
function payloadError(nc: NatsConnection, text: string): string | null {
  const limit = nc.info?.max_payload;
  const bytes = Buffer.byteLength(text);
  if (limit === undefined || bytes <= limit) return null;
  return `${bytes} bytes, more than the server takes (max_payload ${limit} bytes)`;
}

/** --wait --json: the report on the revision, or the later one that superseded it. */
function answerJson(host: string, answer: Answer): Record<string, unknown> {
  if (answer === NOT_MOAT) return { status: null, error: `${host}'s report is not moat's` };
  if (answer && "superseded" in answer) return { status: null, superseded_by: answer.superseded };
  return { status: answer };
}

/** The nkey seed in `file` (moat fleet nkey writes one), for --sign. */
function readSeed(file: string): string {
  let seed: string;
  try {
    seed = readFileSync(file, "utf8").trim();
  } catch (err) {
    throw new UsageError(`--sign: ${(err as Error).message}`, 1);
  }
  if (!/^SU[A-Z2-7]{56}$/.test(seed))
    throw new UsageError(
      `--sign: ${file} holds no user nkey seed (SU...; moat fleet nkey writes one)`,
      1,
    );
  return seed;
}

/** A status key whose value is not a report moat writes. */
const NOT_MOAT = "not moat's";

/** `value` if it has a moat report's shape (the fields printed and compared). */
function asReport(value: unknown): FleetStatus | null {
  if (typeof value !== "object" || value === null) return null;
  const r = value as Record<string, unknown>;
  const ok =
    typeof r.revision === "number" &&
    (r.result === "applied" || r.result === "refused") &&
    typeof r.generation === "number" &&
    Array.isArray(r.errors) &&
    r.errors.every((e) => typeof e === "string");
  return ok ? (value as FleetStatus) : null;
}

/** What --wait found: the report, a later revision's report instead, not moat's, or nothing. */
type Answer = FleetStatus | { superseded: FleetStatus } | typeof NOT_MOAT | null;

/**
 * The host's report on `revision`, NOT_MOAT when the status key holds something else, or null
 * after `waitMs`. A host takes revisions up in order and reports each: a report on a later one
 * first means the host never took this one up (it came while the host was away, and only a
 * key's newest revision is delivered) or its report was replaced before it was written.
 */
async function reportFor(
  nc: NatsConnection,
  bucket: string,
  key: string,
  revision: number,
  waitMs: number,
): Promise<Answer> {
  const kv = await nc.jetstream().views.kv(bucket, { bindOnly: true });
  // reports written since the revision was: none before it can be about it
  const watch = await kv.watch({ key, resumeFromRevision: revision });
  const timer = setTimeout(() => watch.stop(), waitMs);
  let notMoat = false;
  try {
    for await (const e of watch) {
      if (e.operation !== "PUT") continue;
      // a host writes its own report: it may not be JSON, nor moat's shape
      let s: FleetStatus | null = null;
      try {
        s = asReport(e.json<unknown>());
      } catch {
        // not JSON
      }
      if (!s) notMoat = true;
      else if (s.revision === revision) return s;
      else if (s.revision > revision) return { superseded: s };
    }
    return notMoat ? NOT_MOAT : null;
  } finally {
    clearTimeout(timer);
    watch.stop();
  }
}

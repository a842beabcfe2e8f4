// moat's store of local decisions: one JSON file under the daemon's state directory (default
// /var/lib/moat/decisions.json, 0600), written atomically on every change and read at start, so
// decisions survive a restart. What is expired when read (a duration past, "reboot" decisions of
// an earlier boot, a malformed entry) is dropped and said.
import { randomBytes } from "node:crypto";
import {
  bootId,
  readDecisionsFile,
  writeTrustedFileAtomic,
  type DecisionsRead,
} from "../host/index.ts";
import {
  decisionProblems,
  ONCE_WAIT_SECONDS,
  parseLifetime,
  type LocalDecision,
  type ModeDecision,
} from "../config/index.ts";
import { HttpError } from "../api/index.ts";

/** Decisions kept at most: a new one beyond this is refused. */
export const MAX_DECISIONS = 10_000;

/** The longest duration a decision is made for (10 years); longer is `forever`. */
export const MAX_LIFETIME_DAYS = 3650;

/** A decision as asked for: the store gives it an id, its times and its boot. */
export type DecisionRequest = Omit<LocalDecision, "id" | "created" | "expires" | "boot">;

export { DEFAULT_DECISIONS } from "../host/index.ts";

export class DecisionError extends Error {}

/** An errno as "ENOSPC (no space left on device)"; any other error as its message. */
function failureText(err: unknown): string {
  const { code, message } = err as NodeJS.ErrnoException;
  if (!code || !message.startsWith(`${code}: `)) return message;
  return `${code} (${message.slice(code.length + 2).replace(/, \w+( '.*')?$/, "")})`;
}

/** What the API says of a change the file could not take: it was not made. */
function notSaved(path: string, err: unknown): HttpError {
  return new HttpError(
    500,
    "ENOTSAVED",
    `could not save the decisions to ${path}: ${failureText(err)}; nothing was changed`,
  );
}

/** A user as a target compares: digits are the uid they write ("1000", "01000" and 1000). */
function userKey(user: number | string | undefined): string {
  if (user === undefined) return "";
  if (typeof user === "number" || /^\d+$/.test(user)) return `uid ${Number(user)}`;
  return `name ${user}`;
}

const sameTarget = (a: DecisionRequest, b: DecisionRequest): boolean =>
  a.direction === b.direction &&
  a.remote === b.remote &&
  a.protocol === b.protocol &&
  a.port === b.port &&
  a.process?.path === b.process?.path &&
  // absent (every user) is a target of its own
  userKey(a.process?.user) === userKey(b.process?.user);

/** What a request gives (typed: a field added to DecisionRequest is named here). */
const REQUEST_FIELDS: Record<keyof DecisionRequest, true> = {
  action: true,
  direction: true,
  remote: true,
  protocol: true,
  port: true,
  process: true,
  lifetime: true,
  by: true,
  review: true,
};
/** What a request's process gives (typed: a key added to a decision's process is named here). */
const PROCESS_FIELDS: Record<keyof NonNullable<DecisionRequest["process"]>, true> = {
  path: true,
  user: true,
};
/** What the store sets itself: never taken from a request. */
const STORE_FIELDS = ["id", "created", "expires", "boot"];

/**
 * What is wrong with a request's keys: one a decision does not have would be kept and mean
 * nothing (a misspelt `ports` leaves the decision for every port); one the store sets (expires,
 * boot) is never the client's.
 */
function requestKeyProblems(request: object): string[] {
  const keys = Object.keys(request);
  const process = (request as { process?: unknown }).process;
  const unknown = [
    ...keys.filter((k) => !Object.hasOwn(REQUEST_FIELDS, k) && !STORE_FIELDS.includes(k)),
    ...(typeof process === "object" && process !== null
      ? Object.keys(process)
          .filter((k) => !Object.hasOwn(PROCESS_FIELDS, k))
          .map((k) => `process.${k}`)
      : []),
  ];
  const computed = keys.filter((k) => STORE_FIELDS.includes(k));
  return [
    ...(unknown.length > 0
      ? [
          `unknown key${unknown.length > 1 ? "s" : ""} ${unknown.join(", ")} (a decision is {action, direction, remote, lifetime, protocol?, port?, process?: {path, user?}})`,
        ]
      : []),
    ...(computed.length > 0 ? [`${computed.join(", ")}: set by moat, not by a request`] : []),
  ];
}

/** A process's path and user alone; what is not an object stays, for decisionProblems to name. */
function processFields(p: unknown): LocalDecision["process"] {
  if (typeof p !== "object" || p === null) return p as LocalDecision["process"];
  const { path, user } = p as { path?: unknown; user?: unknown };
  if (path === undefined) return p as LocalDecision["process"];
  return {
    path,
    ...(user !== undefined ? { user } : {}),
  } as LocalDecision["process"];
}

/** The request's own fields, copied one by one: nothing else of the object is kept. */
function requestFields(r: DecisionRequest): DecisionRequest {
  return {
    action: r.action,
    direction: r.direction,
    remote: r.remote,
    ...(r.protocol !== undefined ? { protocol: r.protocol } : {}),
    ...(r.port !== undefined ? { port: r.port } : {}),
    ...(r.process !== undefined ? { process: processFields(r.process) } : {}),
    lifetime: r.lifetime,
    by: r.by,
    ...(r.review !== undefined ? { review: r.review } : {}),
  };
}

export interface DecisionStoreOptions {
  /** null: kept in memory only (gone when the daemon stops). */
  path: string | null;
  log: (line: string) => void;
  boot?: string;
  now?: () => number;
}

export class DecisionStore {
  private decisions: LocalDecision[] = [];
  private modeDecision: ModeDecision | undefined;
  private readonly options: DecisionStoreOptions;
  private readonly boot: string;
  private readonly now: () => number;

  constructor(options: DecisionStoreOptions) {
    this.options = options;
    this.boot = options.boot ?? bootId();
    this.now = options.now ?? Date.now;
    this.load();
  }

  get path(): string | null {
    return this.options.path;
  }

  /** The decisions in force, oldest first. */
  list(): LocalDecision[] {
    return [...this.decisions];
  }

  /** The mode `moat mode` decided (undefined: the policy file's mode). */
  mode(): ModeDecision | undefined {
    return this.modeDecision;
  }

  /** Stores the mode decision (undefined: none, the file's mode again); returns it. */
  setMode(mode: ModeDecision["mode"] | undefined, by: string): ModeDecision | undefined {
    const decided =
      mode === undefined ? undefined : { mode, by, created: new Date(this.now()).toISOString() };
    this.commit(this.decisions, decided);
    return decided;
  }

  /** Puts back a mode decision as it was (a refused switch is undone). */
  restoreMode(before: ModeDecision | undefined): void {
    this.commit(this.decisions, before);
  }

  get(id: string): LocalDecision | undefined {
    return this.decisions.find((d) => d.id === id);
  }

  /**
   * Stores a decision; one for the same target (direction, remote, protocol, port, process and
   * its user) is replaced: the newest word on a destination is the one that holds. Returns it and
   * the one it replaced.
   */
  add(request: DecisionRequest): { decision: LocalDecision; replaced?: LocalDecision } {
    const keys = requestKeyProblems(request);
    if (keys.length > 0) throw new DecisionError(`not a decision: ${keys.join("; ")}`);
    const lifetime = parseLifetime(request.lifetime);
    if (!lifetime.ok) throw new DecisionError(lifetime.error);
    const now = this.now();
    const seconds =
      lifetime.value === "once"
        ? ONCE_WAIT_SECONDS
        : typeof lifetime.value === "object"
          ? lifetime.value.seconds
          : null;
    if (seconds !== null && seconds > MAX_LIFETIME_DAYS * 86_400)
      throw new DecisionError(
        `lifetime '${request.lifetime}' is longer than 10 years (${MAX_LIFETIME_DAYS}d): use forever for a decision that does not expire`,
      );
    const decision: LocalDecision = {
      ...requestFields(request),
      id: this.newId(),
      created: new Date(now).toISOString(),
      ...(seconds !== null ? { expires: new Date(now + seconds * 1000).toISOString() } : {}),
      ...(lifetime.value === "reboot" ? { boot: this.boot } : {}),
    };
    const problems = decisionProblems(decision);
    if (problems.length > 0) throw new DecisionError(`not a decision: ${problems.join("; ")}`);
    const replaced = this.decisions.find((d) => sameTarget(d, request));
    if (!replaced && this.decisions.length >= MAX_DECISIONS)
      throw new DecisionError(
        `${MAX_DECISIONS} decisions are stored already: remove some (moat decisions remove ID)`,
      );
    this.commit([...this.decisions.filter((d) => d !== replaced), decision], this.modeDecision);
    return replaced ? { decision, replaced } : { decision };
  }

  /** Removes decision `id`; undefined when there is none. */
  remove(id: string): LocalDecision | undefined {
    const found = this.get(id);
    if (!found) return undefined;
    this.commit(
      this.decisions.filter((d) => d !== found),
      this.modeDecision,
    );
    return found;
  }

  /**
   * Removes and returns the decisions whose time is up. They go even when the file cannot be
   * written: read again, an expired decision is dropped all the same.
   */
  takeExpired(): LocalDecision[] {
    const now = this.now();
    const gone = this.decisions.filter((d) => d.expires && Date.parse(d.expires) <= now);
    if (gone.length === 0) return [];
    this.decisions = this.decisions.filter((d) => !gone.includes(d));
    this.saveOrWarn("expired decisions stay in the file until it is written again");
    return gone;
  }

  /** When (ms since the epoch) the next decision expires, or null. */
  nextExpiry(): number | null {
    const times = this.decisions.flatMap((d) => (d.expires ? [Date.parse(d.expires)] : []));
    return times.length ? times.reduce((a, b) => Math.min(a, b)) : null;
  }

  private newId(): string {
    for (;;) {
      const id = randomBytes(4).toString("hex");
      if (!this.get(id)) return id;
    }
  }

  private load(): void {
    const { path, log } = this.options;
    if (path === null) return;
    let read: DecisionsRead;
    try {
      read = readDecisionsFile(path, this.boot, this.now());
    } catch (err) {
      log(
        `warning: local decisions in ${path} not read (${(err as Error).message}); starting with none`,
      );
      return;
    }
    for (const note of read.notes) log(note.startsWith("a stored") ? `warning: ${note}` : note);
    this.decisions = read.decisions.slice(0, MAX_DECISIONS);
    this.modeDecision = read.mode;
    // what was dropped is dropped again at the next read: the file can wait
    if (read.changed) this.saveOrWarn("what was dropped stays in the file until it is written");
  }

  /**
   * Saves `decisions` and `mode`, then holds them: a change the file cannot take is not made
   * (it would be enforced by the next reload, and lost at the next start). Throws ENOTSAVED.
   */
  private commit(decisions: LocalDecision[], mode: ModeDecision | undefined): void {
    const { path, log } = this.options;
    try {
      this.write(decisions, mode);
    } catch (err) {
      const refusal = notSaved(path ?? "", err);
      log(`warning: ${refusal.message}`);
      throw refusal;
    }
    this.decisions = decisions;
    this.modeDecision = mode;
  }

  /** Saves what is held; a failure is said, and the file is written again at the next change. */
  private saveOrWarn(consequence: string): void {
    try {
      this.write(this.decisions, this.modeDecision);
    } catch (err) {
      this.options.log(
        `warning: could not save the decisions to ${this.options.path}: ${failureText(err)}; ${consequence}`,
      );
    }
  }

  private write(decisions: LocalDecision[], mode: ModeDecision | undefined): void {
    const { path } = this.options;
    if (path === null) return;
    const stored = { version: 1, decisions, mode };
    // in a checked directory, by a temporary file no one could have planted (trusted-file.ts)
    writeTrustedFileAtomic(path, `${JSON.stringify(stored, null, 2)}\n`, {
      what: "local decisions file",
    });
  }
}

// Watches the content of the executables behind connections: each process's executable
// (/proc/PID/exe, else the file at its path once the process is gone) is hashed (sha256) once
// per file version (device, inode, size, times), off the event path, one file at a time; the
// ledger says when a path's content changed, and that becomes one `exe_changed` event. What was
// seen is kept in a state file beside the history (0600, written by rename), so an upgrade made
// while moat was stopped is seen at the next connection.
import { createHash } from "node:crypto";
import { closeSync, createReadStream, fstatSync, openSync } from "node:fs";
import { join } from "node:path";
import type { MoatEvent } from "../../datapath/event.ts";
import { identityOf, type FlowConnection } from "../flows/record.ts";
import { exeChangedEvent } from "./exe-event.ts";
import { ExeLedger } from "./exe-ledger.ts";
import { loadExeState, saveExeState } from "./state-file.ts";

/** A process's executable is looked at again after this long (a new process has a new pid). */
const RECHECK_MS = 60_000;
/** (pid, path) pairs remembered; past this the memory starts again. */
const MAX_CHECKED = 16_384;
/** File versions whose hash is remembered. */
const MAX_HASHES = 4096;
/** Files waiting to be hashed (each holds an open descriptor); more are skipped, counted. */
const MAX_PENDING = 64;
/** How soon after a change the state is written. */
const SAVE_DELAY_MS = 2000;

export interface ExeWatchOptions {
  /** Where what was seen is kept; null: in memory only. */
  statePath: string | null;
  mode: () => MoatEvent["mode"];
  push: (event: MoatEvent) => void;
  log: (line: string) => void;
  /** Default /proc. */
  procRoot?: string;
}

interface Job {
  fd: number;
  version: string;
  path: string;
  connection: FlowConnection;
  timeMs: number;
}

export class ExeWatch {
  readonly ledger = new ExeLedger();
  /** Files not hashed because too many were waiting. */
  skipped = 0;
  readonly #options: ExeWatchOptions;
  readonly #procRoot: string;
  readonly #checked = new Map<string, number>();
  readonly #hashes = new Map<string, string>();
  readonly #pending = new Set<string>();
  #queue: Job[] = [];
  #running: Promise<void> | null = null;
  #saveTimer: NodeJS.Timeout | null = null;
  #saveWarned = false;

  constructor(options: ExeWatchOptions) {
    this.#options = options;
    this.#procRoot = options.procRoot ?? "/proc";
    const path = options.statePath;
    if (path) {
      try {
        loadExeState(path, this.ledger);
      } catch (err) {
        options.log(
          `warning: executables state ${path} could not be read (${(err as Error).message}): each path's next content is its baseline`,
        );
      }
    }
  }

  /** A connection of a process (a flow record or an event): its executable is looked at. */
  seen(c: FlowConnection, timeMs: number): void {
    const p = c.process;
    if (!p?.path || !p.path.startsWith("/")) return;
    const memo = `${p.pid}\u0000${p.path}`;
    const last = this.#checked.get(memo);
    if (last !== undefined && timeMs - last < RECHECK_MS && timeMs >= last) return;
    if (this.#checked.size >= MAX_CHECKED) this.#checked.clear();
    this.#checked.set(memo, timeMs);
    // a container's path names a file of its own filesystem: only /proc/PID/exe reaches it
    const fd = this.#open(p.pid, p.container ? null : p.path);
    if (fd === null) return;
    let version: string;
    try {
      const st = fstatSync(fd);
      version = `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}:${st.ctimeMs}`;
    } catch {
      closeSync(fd);
      return;
    }
    const known = this.#hashes.get(version);
    const pending = `${version}\u0000${p.path}`;
    if (known !== undefined || this.#pending.has(pending) || this.#queue.length >= MAX_PENDING) {
      closeSync(fd);
      if (known !== undefined) this.#judge(p.path, known, c, timeMs);
      else if (!this.#pending.has(pending)) this.skipped++;
      return;
    }
    this.#pending.add(pending);
    this.#queue.push({ fd, version, path: p.path, connection: c, timeMs });
    this.#running ??= this.#drain().finally(() => (this.#running = null));
  }

  /** Resolves once every file queued so far is hashed. */
  async idle(): Promise<void> {
    while (this.#running) await this.#running;
  }

  /** Writes the state now and stops its timer. */
  close(): void {
    if (this.#saveTimer) clearTimeout(this.#saveTimer);
    this.#saveTimer = null;
    this.#save();
  }

  /** The running process's executable; the file at `path` (when given) once it is gone. */
  #open(pid: number, path: string | null): number | null {
    const files = [join(this.#procRoot, String(pid), "exe"), ...(path ? [path] : [])];
    for (const file of files) {
      try {
        return openSync(file, "r");
      } catch {
        // gone, or not readable: the next, or nothing
      }
    }
    return null;
  }

  async #drain(): Promise<void> {
    for (let job = this.#queue.shift(); job; job = this.#queue.shift()) {
      let hash: string | null = null;
      try {
        hash = await hashOf(job.fd);
      } catch {
        // unreadable: nothing to say about it
      } finally {
        this.#pending.delete(`${job.version}\u0000${job.path}`);
      }
      if (hash === null) continue;
      if (this.#hashes.size >= MAX_HASHES) this.#hashes.clear();
      this.#hashes.set(job.version, hash);
      this.#judge(job.path, hash, job.connection, job.timeMs);
    }
  }

  #judge(path: string, hash: string, c: FlowConnection, timeMs: number): void {
    const identity = identityOf(c);
    // a path in a container is that container's file
    const key = identity.container ? `${identity.container}\u0000${path}` : path;
    const current = this.ledger.paths.get(key)?.hash;
    const old = this.ledger.seen(key, hash, timeMs);
    // a new path or a change is written soon; times of use only with the next write
    if (current !== this.ledger.paths.get(key)?.hash) this.#scheduleSave();
    if (old === null) return;
    const { mode, push } = this.#options;
    push(exeChangedEvent({ path, oldHash: old, newHash: hash, identity }, c, timeMs, mode()));
  }

  #scheduleSave(): void {
    if (!this.#options.statePath || this.#saveTimer) return;
    this.#saveTimer = setTimeout(() => {
      this.#saveTimer = null;
      this.#save();
    }, SAVE_DELAY_MS);
    this.#saveTimer.unref();
  }

  #save(): void {
    const path = this.#options.statePath;
    if (!path) return;
    try {
      saveExeState(path, this.ledger);
      this.#saveWarned = false;
    } catch (err) {
      if (!this.#saveWarned)
        this.#options.log(`warning: executables state was not saved: ${(err as Error).message}`);
      this.#saveWarned = true;
    }
  }
}

/** sha256 (hex) of what `fd` reads; closes it. */
function hashOf(fd: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const hash = createHash("sha256");
    const stream = createReadStream("", { fd, autoClose: true });
    stream.on("data", (chunk) => hash.update(chunk));
    stream.on("error", reject);
    stream.on("end", () => resolve(hash.digest("hex")));
  });
}

// The rule names journal (docs/datapath.md, "Restart and upgrade"): what an event shows of the
// rules and redirects of the last few generations a daemon applied, one file a generation in a
// folder beside the history. Kernel events carry a rule index and a generation; the pinned
// programs keep judging (and queueing events) while no daemon runs, and connections judged
// under a previous daemon's generations report again later. The next daemon taking over the same
// pins reads the journal at start, so it names those rules as the previous daemon's policy did.
//
// A file is the generation's number; its first line is a JSON header, then one rule name a line
// (rule names hold no line break: a policy's are [a-z0-9-], moat's own are fixed words). A
// file holds the pins' stamp (the inode and change time of the pin root's `abi` record, made
// anew when the pins are): a journal of other pins (a clean stop removed them, another
// --pin-dir) is never read. Names are read lazily from the file's bytes: a 100k-rule policy's
// names stay one buffer, not 100k strings.
import { readdirSync, readFileSync, statSync, unlinkSync } from "node:fs";
import { join } from "node:path";
import { writeTrustedFileAtomic } from "../host/index.ts";
import {
  richRules,
  ruleName,
  type EventReason,
  type GenerationContents,
} from "../datapath/index.ts";

const VERSION = 1;

/** Where the journal is: its folder, and the pin root whose generations it names. */
export interface RuleNameJournalPlace {
  /** The journal's folder (null: no journal, e.g. without a history). */
  dir: string | null;
  /** The pin root (null: nothing pinned, nothing outlives the daemon). */
  pinRoot: string | null;
}

/** What an event shows of a redirect. */
export interface JournaledRedirect {
  name: string;
  ip: string;
  port: number;
  via?: { ip: string; port: number };
}

interface Header {
  version: number;
  pins: string;
  generation: number;
  rules: number;
  /** Reasons of the few rules that have their own ("doh", "quic"), by index. */
  reasons: Record<string, EventReason>;
  redirects: JournaledRedirect[];
}

/** One journaled generation: its names in the file's bytes, split where read. */
interface Names {
  header: Header;
  bytes: Buffer;
  /** Where rule i's name starts (starts[i]) and ends (starts[i + 1] - 1). */
  starts: Uint32Array;
}

/** The stamp of the pins under `pinRoot`, or null when there are none. */
function pinStamp(pinRoot: string): string | null {
  try {
    const s = statSync(join(pinRoot, "abi"));
    return `${s.ino}:${s.ctimeMs}`;
  } catch {
    return null;
  }
}

/** The file's generation, or NaN for a file that is not one (a temporary file). */
const generationOf = (file: string): number => (/^\d+$/.test(file) ? Number(file) : NaN);

/** A journal file's names, or null when it is not one of these pins' or not whole. */
function parse(bytes: Buffer, pins: string, generation: number): Names | null {
  const eol = bytes.indexOf(10);
  if (eol < 0) return null;
  let header: Header;
  try {
    header = JSON.parse(bytes.toString("utf8", 0, eol)) as Header;
  } catch {
    return null;
  }
  if (header.version !== VERSION || header.pins !== pins || header.generation !== generation)
    return null;
  const starts = new Uint32Array(header.rules + 1);
  let at = eol + 1;
  for (let i = 0; i < header.rules; i++) {
    starts[i] = at;
    const end = bytes.indexOf(10, at);
    if (end < 0) return null; // cut short
    at = end + 1;
  }
  starts[header.rules] = at;
  // a name with a line break would shift every name after it: such a file is not read
  return at === bytes.length ? { header, bytes, starts } : null;
}

/** The file of `contents`: the header line, then the rule names. */
function serialize(pins: string, generation: number, contents: GenerationContents): Buffer {
  const reasons: Record<string, EventReason> = {};
  for (const [i, r] of richRules(contents.rules)) if (r.reason) reasons[i] = r.reason;
  const header: Header = {
    version: VERSION,
    pins,
    generation,
    rules: contents.rules.length,
    reasons,
    redirects: contents.redirects.map((r) => ({
      name: r.name,
      ip: r.ip,
      port: r.port,
      ...(r.via ? { via: r.via } : {}),
    })),
  };
  let text = `${JSON.stringify(header)}\n`;
  for (let i = 0; i < contents.rules.length; i++) text += `${ruleName(contents.rules, i)}\n`;
  return Buffer.from(text, "utf8");
}

export class RuleNameJournal {
  private readonly dir: string;
  private readonly pinRoot: string;
  /** The pins' stamp, read again at each write (pins restored after a removal are new ones). */
  private pins: string;
  private readonly keep: number;
  /** The previous daemons' generations still recent enough to be named. */
  private readonly earlier = new Map<number, Names>();
  private readonly log: (line: string) => void;
  private warned = false;

  /**
   * The journal of the pins under `place.pinRoot`, with the generations before `first` (this
   * daemon's first) that are still among the `keep` most recent; null without a folder or pins.
   */
  static open(
    place: RuleNameJournalPlace,
    first: number,
    keep: number,
    log: (line: string) => void,
  ): RuleNameJournal | null {
    if (!place.dir || !place.pinRoot) return null;
    const pins = pinStamp(place.pinRoot);
    if (!pins) return null;
    return new RuleNameJournal(place.dir, place.pinRoot, pins, first, keep, log);
  }

  private constructor(
    dir: string,
    pinRoot: string,
    pins: string,
    first: number,
    keep: number,
    log: (line: string) => void,
  ) {
    this.dir = dir;
    this.pinRoot = pinRoot;
    this.pins = pins;
    this.keep = keep;
    this.log = log;
    for (const g of this.files().map(generationOf)) {
      if (!(g < first && g > first - keep)) continue;
      try {
        const names = parse(readFileSync(join(dir, String(g))), pins, g);
        if (names) this.earlier.set(g, names);
      } catch {
        // unreadable: its events keep the rule's number
      }
    }
  }

  /** The folder's files (none when it is not there yet). */
  private files(): string[] {
    try {
      return readdirSync(this.dir);
    } catch {
      return [];
    }
  }

  /** Rule `index` of an earlier daemon's `generation`, if journaled. */
  rule(index: number, generation: number): { name: string; reason?: EventReason } | undefined {
    const names = this.earlier.get(generation);
    if (!names || index >= names.header.rules) return undefined;
    const name = names.bytes.toString("utf8", names.starts[index], names.starts[index + 1]! - 1);
    const reason = names.header.reasons[index];
    return reason ? { name, reason } : { name };
  }

  /** Redirect `index` of an earlier daemon's `generation`, if journaled. */
  redirect(index: number, generation: number): JournaledRedirect | null {
    return this.earlier.get(generation)?.header.redirects[index] ?? null;
  }

  /**
   * Journals `generation` (a kill never leaves half of it), and
   * forgets the generations too old to be kept, and any of other pins numbered after it.
   */
  record(generation: number, contents: GenerationContents): void {
    const path = join(this.dir, String(generation));
    this.pins = pinStamp(this.pinRoot) ?? this.pins;
    try {
      // through a temporary file no one could have planted, renamed: a kill leaves no half file
      writeTrustedFileAtomic(path, serialize(this.pins, generation, contents), {
        what: "rule names journal",
      });
    } catch (err) {
      if (!this.warned)
        this.log(
          `warning: rule names not journaled in ${this.dir} (events a next daemon reads of this policy will name rules by number): ${(err as Error).message}`,
        );
      this.warned = true;
    }
    for (const g of this.earlier.keys()) if (g <= generation - this.keep) this.earlier.delete(g);
    // (a temporary file a kill left is removed too)
    for (const file of this.files()) {
      const g = generationOf(file);
      if (g > generation - this.keep && g <= generation) continue;
      try {
        unlinkSync(join(this.dir, file));
      } catch {
        // gone meanwhile
      }
    }
  }
}

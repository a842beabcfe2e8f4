// What the semantic checks share: the source (for positions), the diagnostics so far, the schema's
// findings (to skip values the schema already rejected), and the host that reads set files.

import { diagnostic, type Diagnostic, type SourcePos } from "./diagnostics.ts";
import type { SchemaProblem } from "./schema-check.ts";
import type { PathSegment, CheckedSource } from "./yaml-source.ts";

/** What a file read for a policy is: the policy itself, or a set file it names. */
export type PolicyFileKind = "policy" | "set";

/** How the loader reaches files: Node's fs in the CLI and daemon, something else in a browser. */
export interface PolicyHost {
  /** The text of a file; throws (with a message saying why) if it cannot be read. */
  readFile(path: string, kind?: PolicyFileKind): string;
  /** `path` as written in the policy (absolute, or relative to the policy file's folder). */
  resolve(policyFile: string, path: string): string;
  /**
   * The files of the built-in sets (`doh-resolvers`: the shipped list of DoH resolvers), by set
   * name; read through readFile as set files are, only when a policy uses them.
   */
  builtinSets?: Readonly<Record<string, string>>;
  /**
   * The folder where the daemon keeps dynamic sets' entries (NAME.dynamic) and fetched feeds
   * (NAME.feed); absent: such sets are empty.
   */
  setStore?: string;
}

/**
 * `[...path, seg]` in an array of its length (a spread allocates room for 20 segments): the checks
 * of a big file make a few paths for every rule.
 */
export function childPath(path: readonly PathSegment[], seg: PathSegment): PathSegment[] {
  const n = path.length;
  const out = new Array<PathSegment>(n + 1);
  for (let i = 0; i < n; i++) out[i] = path[i] as PathSegment;
  out[n] = seg;
  return out;
}

/** Keywords after which the value's type is not what the schema promises. */
const TYPE_BREAKING = new Set(["type", "anyOf", "const", "enum"]);

export class CheckContext {
  readonly source: CheckedSource;
  readonly host: PolicyHost;
  readonly diagnostics: Diagnostic[] = [];
  private readonly problems: SchemaProblem[];

  constructor(source: CheckedSource, problems: SchemaProblem[], host: PolicyHost) {
    this.source = source;
    this.problems = problems;
    this.host = host;
  }

  pos(path: readonly PathSegment[]): SourcePos {
    return this.source.pos(path);
  }

  error(path: readonly PathSegment[], message: string): void {
    this.diagnostics.push(diagnostic(this.source.pos(path), message));
  }

  warn(path: readonly PathSegment[], message: string): void {
    this.diagnostics.push(diagnostic(this.source.pos(path), message, "warning"));
  }

  report(pos: SourcePos, message: string, severity: "error" | "warning" = "error"): void {
    this.diagnostics.push(diagnostic(pos, message, severity));
  }

  /** Whether the value at `path` has the type the schema says (its contents may still be wrong). */
  typed(path: readonly PathSegment[]): boolean {
    // a schema-valid file (the usual, and a big file's, case) has no problem to look through
    if (this.problems.length === 0) return true;
    return !this.problems.some(
      (p) =>
        p.path.length <= path.length &&
        p.path.every((seg, i) => path[i] === seg) &&
        (TYPE_BREAKING.has(p.keyword) ||
          (p.path.length === path.length && p.keyword === "required")),
    );
  }

  /**
   * Whether the value at `path` passed the schema: nothing wrong at or under it, and no ancestor of
   * the wrong type. Semantic checks read only clean values, so every error is reported once.
   */
  clean(path: readonly PathSegment[]): boolean {
    if (this.problems.length === 0) return true;
    return !this.problems.some((p) => {
      const under = path.every((seg, i) => p.path[i] === seg);
      // an unknown key is reported, but it does not change the type of anything read here
      if (under) return p.keyword !== "additionalProperties";
      const above = p.path.length < path.length && p.path.every((seg, i) => path[i] === seg);
      return above && TYPE_BREAKING.has(p.keyword);
    });
  }

  /** typed([...path, seg]), without making that path when the schema found nothing. */
  typedChild(path: readonly PathSegment[], seg: PathSegment): boolean {
    return this.problems.length === 0 || this.typed([...path, seg]);
  }

  /** clean([...path, seg]), without making that path when the schema found nothing. */
  cleanChild(path: readonly PathSegment[], seg: PathSegment): boolean {
    return this.problems.length === 0 || this.clean([...path, seg]);
  }
}

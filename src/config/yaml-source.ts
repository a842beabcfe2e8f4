// A policy file parsed as YAML with positions: the plain data, plus "where is this path?" answers.

import {
  isAlias,
  isMap,
  isPair,
  isScalar,
  isSeq,
  LineCounter,
  parseDocument,
  type Document,
  type Node,
  type Pair,
} from "yaml";
import { diagnostic, type Diagnostic, type SourcePos } from "./diagnostics.ts";

export type PathSegment = string | number;

/** ["rules", 2, "layer4", "port", 0] -> "rules[2].layer4.port[0]"; [] -> "(root)". */
export function formatPath(path: readonly PathSegment[]): string {
  let text = "";
  for (const seg of path) text += typeof seg === "number" ? `[${seg}]` : text ? `.${seg}` : seg;
  return text || "(root)";
}

interface Located {
  node: Node | null;
  pair: Pair | null;
}

export class PolicySource {
  readonly file: string;
  /** The document as plain data (what the schema validates). */
  readonly data: unknown;
  /** False when the YAML syntax itself is broken: then there is no data to check. */
  readonly parsed: boolean = false;
  /** YAML syntax errors and warnings, and YAML-isms that would silently change meaning. */
  readonly diagnostics: Diagnostic[] = [];
  private readonly doc: Document;
  private readonly lines = new LineCounter();
  private readonly text: string;

  constructor(file: string, text: string) {
    this.file = file;
    this.text = text;
    this.doc = parseDocument(text, { lineCounter: this.lines, prettyErrors: false });
    for (const e of this.doc.errors) {
      const { line, col } = this.lines.linePos(e.pos[0]);
      this.diagnostics.push(diagnostic({ file, line, col, path: "(yaml)" }, firstLine(e.message)));
    }
    for (const w of this.doc.warnings) {
      if (w.code === "TAG_RESOLVE_FAILED") continue; // reported by path in fixTags
      const { line, col } = this.lines.linePos(w.pos[0]);
      this.diagnostics.push(
        diagnostic({ file, line, col, path: "(yaml)" }, firstLine(w.message), "warning"),
      );
    }
    if (this.doc.errors.length > 0) return;
    this.fixTags(this.doc.contents, []);
    this.data = this.doc.toJS({ maxAliasCount: 1000 }) as unknown;
    this.parsed = true;
  }

  /** Position of the value at `path`, or of the nearest ancestor that exists. */
  pos(path: readonly PathSegment[]): SourcePos {
    return this.at(path, "value");
  }

  /** Position of the key of the mapping entry at `path` (for "unknown property"). */
  keyPos(path: readonly PathSegment[]): SourcePos {
    return this.at(path, "key");
  }

  private at(path: readonly PathSegment[], want: "key" | "value"): SourcePos {
    let here: Located = { node: this.doc.contents, pair: null };
    let offset = this.offsetOf(here, want) ?? 0;
    for (const seg of path) {
      const next = this.child(here.node, seg);
      if (!next) break;
      here = next;
      offset = this.offsetOf(here, want) ?? offset;
    }
    const { line, col } = this.lines.linePos(offset);
    return { file: this.file, line, col, path: formatPath(path) };
  }

  private offsetOf(here: Located, want: "key" | "value"): number | undefined {
    const keyOffset = here.pair && isScalar(here.pair.key) ? here.pair.key.range?.[0] : undefined;
    if (want === "key" && keyOffset !== undefined) return keyOffset;
    const range = here.node?.range;
    // an empty value ("port:" with nothing after it) points at its key
    if (!range || (isScalar(here.node) && here.node.value === null && range[0] === range[1]))
      return keyOffset ?? range?.[0];
    return range[0];
  }

  private child(node: Node | null, seg: PathSegment): Located | undefined {
    const target = node && isAlias(node) ? (node.resolve(this.doc) ?? null) : node;
    if (isMap(target)) {
      const pair = target.items.find((p) => isScalar(p.key) && String(p.key.value) === String(seg));
      return pair ? { node: (pair.value as Node | null) ?? null, pair } : undefined;
    }
    if (isSeq(target) && typeof seg === "number") {
      const item = target.items[seg] as Node | undefined;
      return item ? { node: item, pair: null } : undefined;
    }
    return undefined;
  }

  /**
   * An unquoted `!10.0.0.0/8` is a YAML tag, not an excluded address: report it with the fix,
   * then read it as the string the user meant so the rest of the file is still checked.
   */
  private fixTags(node: unknown, path: PathSegment[]): void {
    if (isPair(node)) return;
    if (isScalar(node)) {
      const tag = node.tag;
      if (tag?.startsWith("!") && !tag.startsWith("!!")) {
        const meant =
          node.value === null || node.value === "" ? tag : `${tag} ${String(node.value)}`;
        // the node's range starts after the tag: point at the tag, where the user typed '!'
        const after = node.range?.[0] ?? 0;
        const at = this.text.lastIndexOf(tag, after);
        const { line, col } = this.lines.linePos(at >= 0 ? at : after);
        this.diagnostics.push(
          diagnostic(
            { file: this.file, line, col, path: formatPath(path) },
            `YAML reads a leading '!' as a tag: quote it, e.g. "${meant}"`,
          ),
        );
        node.tag = undefined;
        node.value = meant;
      }
      return;
    }
    if (isMap(node)) {
      for (const pair of node.items)
        if (isScalar(pair.key)) this.fixTags(pair.value, [...path, String(pair.key.value)]);
    } else if (isSeq(node)) {
      node.items.forEach((item, i) => this.fixTags(item, [...path, i]));
    }
  }
}

function firstLine(message: string): string {
  return message.split("\n")[0]?.replace(/ at line \d+, column \d+:?$/, "") ?? message;
}

// `ids` (schema-valid) -> the model's IdsModel: every signature parsed, inline or from its files.
// A malformed signature is an error; one using a keyword outside moat's subset is a warning and
// is skipped (docs/policy.md, "ids"); both at FILE:LINE:COL of what is wrong.
import type { CheckContext } from "./check-context.ts";
import type { SourcePos } from "./diagnostics.ts";
import { parseSignature } from "./ids-signature.ts";
import { plainPos } from "./positions.ts";
import type { IdsRule, PolicyModel } from "./model.ts";
import type { PolicyDocument } from "./schema.ts";
import { IDS_DEFAULT_BYTES } from "./ids-bytes.ts";
import { quotedColumns } from "./ids-yaml-columns.ts";

/** A signature's text and where its first character is. */
interface Located {
  text: string;
  pos: SourcePos;
  /** Written in the policy as a quoted string: where its opening quote is. */
  quote?: SourcePos;
}

/** Characters a quoted YAML string may hold escaped ('' or \" ...): columns move past them. */
const MAYBE_ESCAPED = /["'\\]|[^\x20-\x7e]/;

export function normalizeIds(ctx: CheckContext, doc: PolicyDocument): Pick<PolicyModel, "ids"> {
  const ids = doc.ids;
  if (!ids || !ctx.clean(["ids"])) return {};
  const texts: Located[] = [];
  (ids.rules ?? []).forEach((text, i) => {
    const path = ["ids", "rules", i];
    const pos = plainPos(ctx.pos(path));
    if (ctx.source.quoted?.(path))
      texts.push({ text, pos: { ...pos, col: pos.col + 1 }, quote: pos });
    else texts.push({ text, pos });
  });
  const files: string[] = [];
  const named = ids.rules_file === undefined ? [] : [ids.rules_file].flat();
  named.forEach((name, i) => {
    const path =
      typeof ids.rules_file === "string" ? ["ids", "rules_file"] : ["ids", "rules_file", i];
    const file = ctx.host.resolve(ctx.source.file, name);
    let text: string;
    try {
      text = ctx.host.readFile(file, "set");
    } catch (err) {
      ctx.error(path, `cannot read signature file '${name}': ${(err as Error).message}`);
      return;
    }
    files.push(file);
    text.split(/\r?\n/).forEach((line, n) => {
      const trimmed = line.trim();
      if (trimmed === "" || trimmed.startsWith("#")) return;
      const col = line.indexOf(trimmed) + 1;
      texts.push({ text: trimmed, pos: { file, line: n + 1, col, path: `ids.rules_file` } });
    });
  });

  let policyLines: string[] | null | undefined;
  /**
   * The column of `at` in a signature's text: in a quoted string with escapes, where it is written
   * in the policy (read again only then; as it reads if the policy cannot be read, or changed).
   */
  const columnOf = ({ text, pos, quote }: Located, at: number): number => {
    if (!quote || !MAYBE_ESCAPED.test(text)) return pos.col + at;
    if (policyLines === undefined) {
      try {
        policyLines = ctx.host.readFile(ctx.source.file, "policy").split("\n");
      } catch {
        policyLines = null;
      }
    }
    const line = policyLines?.[quote.line - 1];
    const cols = line === undefined ? undefined : quotedColumns(line, quote.col, text);
    return cols?.[at] ?? pos.col + at;
  };

  const signatures: IdsRule[] = [];
  const sids = new Map<number, SourcePos>();
  let refused = 0;
  for (const located of texts) {
    const { text, pos } = located;
    const parsed = parseSignature(text);
    if (!parsed.ok) {
      const malformed = parsed.problems.some((p) => p.kind === "malformed");
      if (!malformed) refused++;
      for (const p of parsed.problems)
        ctx.report(
          { ...plainPos(pos), col: columnOf(located, p.at) },
          p.kind === "refused" ? `${p.message}; this signature is not loaded` : p.message,
          p.kind === "refused" ? "warning" : "error",
        );
      continue;
    }
    const first = sids.get(parsed.signature.sid);
    if (first) {
      ctx.report(
        pos,
        `duplicate sid ${parsed.signature.sid} (first at ${first.file}:${first.line}:${first.col})`,
      );
      continue;
    }
    sids.set(parsed.signature.sid, pos);
    signatures.push({ ...parsed.signature, text, pos });
  }
  if (signatures.length === 0 && refused === 0 && texts.length === 0)
    ctx.warn(["ids"], "'ids' has no signatures: no flow is read");
  return {
    ids: {
      mode: ids.mode ?? "detect",
      bytes: ids.bytes ?? IDS_DEFAULT_BYTES,
      sample: ids.sample ?? 1,
      signatures,
      refused,
      files,
      pos: ctx.pos(["ids"]),
    },
  };
}

// The YAML editor: CodeMirror 6 with completion and hover docs from schema/moat.schema.json, and
// the lint markers of moat's own loader (policy-check.ts), so the editor shows exactly what
// `moat check` says. The rule that decides the explained connection is highlighted.
import { basicSetup } from "codemirror";
import { EditorView, Decoration, hoverTooltip, type DecorationSet } from "@codemirror/view";
import { EditorState, StateEffect, StateField, type Extension } from "@codemirror/state";
import { yaml, yamlLanguage } from "@codemirror/lang-yaml";
import { lintGutter, setDiagnostics, type Diagnostic as LintMark } from "@codemirror/lint";
import { yamlCompletion, yamlSchemaHover } from "codemirror-json-schema/yaml";
import { stateExtensions } from "codemirror-json-schema";
import type { JSONSchema7 } from "json-schema";
import schema from "../../schema/moat.schema.json";
import type { Diagnostic } from "../../src/config/index.ts";

const setDeciding = StateEffect.define<number | null>();
const decidingLine = Decoration.line({ class: "cm-deciding", attributes: { "data-deciding": "" } });

/** The line of the deciding rule, as a line decoration. */
const decidingField = StateField.define<DecorationSet>({
  create: () => Decoration.none,
  update(value, tr) {
    let next = value.map(tr.changes);
    for (const e of tr.effects) {
      if (!e.is(setDeciding)) continue;
      const line = e.value;
      next =
        line === null || line < 1 || line > tr.state.doc.lines
          ? Decoration.none
          : Decoration.set([decidingLine.range(tr.state.doc.line(line).from)]);
    }
    return next;
  },
  provide: (f) => EditorView.decorations.from(f),
});

export interface PolicyEditor {
  view: EditorView;
  text(): string;
  setText(text: string): void;
  /** Marks these diagnostics in the text (from moat's loader). */
  setProblems(diagnostics: readonly Diagnostic[]): void;
  /** Highlights a line (the deciding rule); null clears it. */
  setDeciding(line: number | null): void;
  goTo(line: number, col: number): void;
}

function position(view: EditorView, line: number, col: number): { from: number; to: number } {
  const doc = view.state.doc;
  const l = doc.line(Math.min(Math.max(line, 1), doc.lines));
  const from = Math.min(l.from + Math.max(col, 1) - 1, l.to);
  const rest = l.text.slice(from - l.from);
  const word = /^\S+/.exec(rest)?.[0].length ?? 0;
  return { from, to: Math.max(from + word, Math.min(from + 1, l.to)) };
}

export function createEditor(
  parent: HTMLElement,
  text: string,
  onChange: (text: string) => void,
): PolicyEditor {
  const marks = (view: EditorView, problems: readonly Diagnostic[]): LintMark[] =>
    problems.map((d) => ({
      ...position(view, d.line, d.col),
      severity: d.severity,
      message: `${d.path}: ${d.message}`,
      source: "moat check",
    }));
  const extensions: Extension[] = [
    basicSetup,
    yaml(),
    lintGutter(),
    yamlLanguage.data.of({ autocomplete: yamlCompletion() }),
    hoverTooltip(yamlSchemaHover()),
    stateExtensions(schema as JSONSchema7),
    decidingField,
    EditorView.lineWrapping,
    EditorView.contentAttributes.of({ "aria-label": "policy (YAML)", tabindex: "0" }),
    EditorView.updateListener.of((u) => {
      if (u.docChanged) onChange(u.state.doc.toString());
    }),
  ];
  const view = new EditorView({ state: EditorState.create({ doc: text, extensions }), parent });
  return {
    view,
    text: () => view.state.doc.toString(),
    setText(next) {
      view.dispatch({ changes: { from: 0, to: view.state.doc.length, insert: next } });
    },
    setProblems(diagnostics) {
      view.dispatch(setDiagnostics(view.state, marks(view, diagnostics)));
    },
    setDeciding(line) {
      const effects: StateEffect<unknown>[] = [setDeciding.of(line)];
      if (line !== null && line >= 1 && line <= view.state.doc.lines)
        effects.push(EditorView.scrollIntoView(view.state.doc.line(line).from, { y: "center" }));
      view.dispatch({ effects });
    },
    goTo(line, col) {
      const { from } = position(view, line, col);
      view.dispatch({ selection: { anchor: from }, scrollIntoView: true });
      view.focus();
    },
  };
}

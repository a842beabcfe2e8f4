// The host-independent part of accepting a policy: the text checked (src/config), what this
// datapath cannot enforce refused (an unenforced rule would be a silent hole), the kernel tables
// compiled; every problem a diagnostic. src/host/accept-policy.ts adds what only a host can say
// (its users, files, name services, routes); the web playground runs this with none of those.
import {
  checkPolicySource,
  DATAPATH_FEATURES,
  sortDiagnostics,
  unsupportedFeatures,
  type Diagnostic,
  type PolicyCheck,
  type PolicyHost,
  type LocalDecision,
  type Mode,
  type PolicyModel,
} from "../config/index.ts";
import { diagnostic, hasErrors } from "../config/diagnostics.ts";
import { compilePolicy, namesProcesses } from "./compile/policy-image.ts";
import { decisionRules } from "./decision-rules.ts";
import type { PolicyImage } from "./compile/kernel-image.ts";
import { universeQuery, type ProcessUniverse, type UniverseQuery } from "./compile/process.ts";
import { httpRuleWarnings } from "./http-support.ts";
import { layer7RuleProblems } from "./layer7-support.ts";
import { nameRuleProblems, nameRuleWarnings } from "./names-support.ts";
import { processRuleProblems } from "./process-support.ts";
import { redirectProblems } from "./redirect-support.ts";

export interface LoadedPolicy {
  model: PolicyModel;
  image: PolicyImage;
}

export interface Acceptance {
  /** Every error and warning, in file order. */
  diagnostics: Diagnostic[];
  /** The model and its kernel tables, when there is no error. */
  policy?: LoadedPolicy;
}

/** What a host adds to the checks; each is optional (a browser has none). */
export interface HostJudgement {
  /** How set files are read. */
  host: PolicyHost;
  /** What only this host can say of a checked model (unknown users, unsafe files, ...). */
  hostDiagnostics?: (model: PolicyModel) => Diagnostic[];
  /** What process rules resolve to on this host (null: they compile to match nothing). */
  universe?: (query: UniverseQuery) => ProcessUniverse;
  /** Redirect targets the clients they redirect cannot reach. */
  unreachable?: (model: PolicyModel, universe: ProcessUniverse | null) => Diagnostic[];
  /** The compiler's options (the daemon's: where its DNS proxy listens). */
  compile?: Parameters<typeof compilePolicy>[2];
  /** Told what long work starts (`moat check` shows it on a terminal). */
  progress?: (step: string) => void;
  /** moat's local decisions, judged before the file's rules (the daemon's store). */
  decisions?: LocalDecision[];
  /** The global mode `moat mode` decided, as if the file said it (the daemon's store). */
  mode?: Mode;
}

/** Checks and compiles policy text named `fileName` (its set files are relative to it). */
export function acceptPolicyText(text: string, fileName: string, judge: HostJudgement): Acceptance {
  judge.progress?.(`checking ${fileName} (${sizeOf(text)})`);
  return acceptCheckedPolicy(
    checkPolicySource(text, fileName, judge.host, judge.mode),
    fileName,
    judge,
  );
}

/** A text's size for a progress line: "812 KB", "14.7 MB". */
export function sizeOf(text: string): string {
  const bytes = text.length;
  return bytes < 1e6 ? `${Math.ceil(bytes / 1e3)} KB` : `${(bytes / 1e6).toFixed(1)} MB`;
}

/** The rest of acceptPolicyText, once the text is checked (with `judge.host`'s set files). */
export function acceptCheckedPolicy(
  checked: PolicyCheck,
  fileName: string,
  judge: HostJudgement,
): Acceptance {
  if (!checked.model) return { diagnostics: checked.diagnostics };
  const model: PolicyModel = judge.decisions?.length
    ? { ...checked.model, decisions: judge.decisions }
    : checked.model;
  const hostOnly = judge.hostDiagnostics?.(model) ?? [];
  const more = [...hostOnly, ...nameRuleWarnings(model), ...httpRuleWarnings(model)];
  const check = { diagnostics: sortDiagnostics([...checked.diagnostics, ...more]) };
  if (hasErrors(check.diagnostics)) return check;
  // the local decisions are checked as rules, judged before the file's (numbered so): one the
  // datapath cannot enforce here is refused
  const judged = model.decisions?.length
    ? {
        ...model,
        rules: [...decisionRules(model), ...model.rules].map((r, index) => ({ ...r, index })),
      }
    : model;
  const refused = [
    ...unsupportedFeatures(judged, DATAPATH_FEATURES),
    ...processRuleProblems(judged),
    ...redirectProblems(model),
    ...nameRuleProblems(judged),
    ...layer7RuleProblems(judged),
  ];
  if (refused.length > 0)
    return { diagnostics: sortDiagnostics([...check.diagnostics, ...refused]) };
  const universe =
    namesProcesses(model) && judge.universe ? judge.universe(universeQuery(model)) : null;
  const unreachable =
    model.redirects.length > 0 && judge.unreachable ? judge.unreachable(model, universe) : [];
  if (unreachable.length > 0)
    return { diagnostics: sortDiagnostics([...check.diagnostics, ...unreachable]) };
  try {
    judge.progress?.(`compiling ${model.rules.length} rules`);
    const progress = judge.progress;
    const compile = progress
      ? {
          ...judge.compile,
          onPhase: (phase: string, ms: number) => {
            judge.compile?.onPhase?.(phase, ms);
            progress(`compiling ${model.rules.length} rules: ${phase} done`);
          },
        }
      : judge.compile;
    return {
      diagnostics: check.diagnostics,
      policy: { model, image: compilePolicy(model, universe, compile) },
    };
  } catch (err) {
    // the tables would not fit the kernel's limits: a problem of the whole policy
    const at = { file: fileName, line: 1, col: 1, path: "(policy)" };
    return { diagnostics: [...check.diagnostics, diagnostic(at, (err as Error).message)] };
  }
}

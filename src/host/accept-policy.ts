// The one way a policy is accepted: `moat check`, the daemon (its file, SIGHUP, the API) and
// POST /v1/policy/validate all call acceptPolicy, so what one accepts the others apply. It checks
// the text (src/config), refuses what this datapath cannot enforce (an unenforced rule would be a
// silent hole), and compiles the kernel tables; every problem is a diagnostic. `moat check` and
// the daemon's thread read the files first, off the event loop (acceptPolicyAsync), then call it;
// the daemon's policy worker calls it and reads them as it goes (no event loop waits there).
import {
  checkPolicySource,
  PolicyError,
  type LocalDecision,
  type Mode,
  type PolicyCheck,
  type PolicyHost,
} from "../config/index.ts";
import { diagnostic, hasErrors } from "../config/diagnostics.ts";
import { nodeHost, readPolicyFileText, readPolicyFileTextAsync } from "./policy-files.ts";
import {
  acceptCheckedPolicy,
  acceptPolicyText,
  compilePolicy,
  sizeOf,
  type HostJudgement,
  type Acceptance,
  type LoadedPolicy,
  type ProcessUniverse,
  type UniverseQuery,
} from "../policy/index.ts";
import { namedFileProblems } from "./file-checks.ts";
import { unreachableTargets } from "./redirect-reach.ts";
import { unknownUserWarnings } from "./user-warnings.ts";
import { nameServiceDiagnostics } from "./name-service.ts";

export type { Acceptance, LoadedPolicy } from "../policy/index.ts";

/** Reads what a policy's process rules ask of this host (src/host/process-universe.ts). */
export type UniverseReader = (query: UniverseQuery) => ProcessUniverse;

export interface AcceptOptions {
  /**
   * What process rules resolve to on this host, and whether redirect targets are reachable from
   * the clients they redirect. Without it, process rules compile to match nothing (the packet
   * path's tests) and redirect targets are checked from this host's network namespace only.
   */
  universe?: UniverseReader;
  /** How set files are read (default: Node's fs, as src/host/trusted-file.ts opens them). */
  host?: PolicyHost;
  /** The compiler's options (the daemon's: where its DNS proxy listens). */
  compile?: Parameters<typeof compilePolicy>[2];
  /** Told what long work starts: reading, checking, compiling (`moat check` on a terminal). */
  progress?: (step: string) => void;
  /** moat's local decisions, judged before the file's rules. */
  decisions?: LocalDecision[];
  /** The global mode `moat mode` decided, as if the file said it. */
  mode?: Mode;
}

/** Checks and compiles policy text named `fileName` (its set files are relative to it). */
export function acceptPolicy(
  text: string,
  fileName: string,
  options: AcceptOptions = {},
): Acceptance {
  return acceptPolicyText(text, fileName, judgement(options));
}

/** The rest of acceptPolicy, once the text is checked. */
function acceptChecked(checked: PolicyCheck, fileName: string, options: AcceptOptions): Acceptance {
  return acceptCheckedPolicy(checked, fileName, judgement(options));
}

/** What this host adds to the host-independent acceptance. */
function judgement(options: AcceptOptions): HostJudgement {
  return {
    host: options.host ?? nodeHost,
    // what only this host can say: users /etc/passwd does not know, files others could tamper
    // with, name services whose lookups moat cannot attribute
    hostDiagnostics: (model) => [
      ...unknownUserWarnings(model),
      ...namedFileProblems(model),
      ...nameServiceDiagnostics(model),
    ],
    ...(options.universe ? { universe: options.universe } : {}),
    unreachable: unreachableTargets,
    ...(options.compile ? { compile: options.compile } : {}),
    ...(options.progress ? { progress: options.progress } : {}),
    ...(options.decisions ? { decisions: options.decisions } : {}),
    ...(options.mode ? { mode: options.mode } : {}),
  };
}

/** acceptPolicy on a file; a file that cannot be read is one diagnostic. */
export function acceptPolicyFile(
  path: string,
  options: AcceptOptions = {},
): Acceptance & {
  text?: string;
} {
  let text: string;
  try {
    text = options.host ? options.host.readFile(path, "policy") : readPolicyFileText(path);
  } catch (err) {
    const at = { file: path, line: 1, col: 1, path: "(file)" };
    return { diagnostics: [diagnostic(at, `cannot read policy file: ${(err as Error).message}`)] };
  }
  return { ...acceptPolicy(text, path, options), text };
}

/**
 * acceptPolicy with its set files read off the event loop first (in chunks, on libuv's thread
 * pool): the daemon's API keeps answering while a set file of tens of megabytes is read.
 */
export async function acceptPolicyAsync(
  text: string,
  fileName: string,
  options: AcceptOptions = {},
): Promise<Acceptance> {
  if (options.host) return acceptPolicy(text, fileName, options);
  const prefetched = await prefetchSetFiles(text, fileName, options.progress, options.mode);
  // a policy that names no set file was checked in full by the first pass
  if ("checked" in prefetched) return acceptChecked(prefetched.checked, fileName, options);
  return acceptPolicy(text, fileName, { ...options, host: prefetched.host });
}

/** acceptPolicyFile with every file read off the event loop. */
export async function acceptPolicyFileAsync(
  path: string,
  options: AcceptOptions = {},
): Promise<Acceptance & { text?: string }> {
  let text: string;
  try {
    options.progress?.(`reading ${path}`);
    text = options.host
      ? options.host.readFile(path, "policy")
      : await readPolicyFileTextAsync(path, "policy");
  } catch (err) {
    const at = { file: path, line: 1, col: 1, path: "(file)" };
    return { diagnostics: [diagnostic(at, `cannot read policy file: ${(err as Error).message}`)] };
  }
  return { ...(await acceptPolicyAsync(text, path, options)), text };
}

/**
 * The set files `text` names, read before acceptPolicy asks for them: a first check with a host
 * that only notes which files are named finds them (its diagnostics are dropped; which files a
 * policy names does not depend on their contents), then each is read asynchronously. The host
 * returned answers from what was read, errors included, so the diagnostics are the ones a
 * synchronous read gives. When no set file is named, the first check is the whole check.
 */
async function prefetchSetFiles(
  text: string,
  fileName: string,
  progress?: (step: string) => void,
  mode?: Mode,
): Promise<{ host: PolicyHost } | { checked: PolicyCheck }> {
  progress?.(`checking ${fileName} (${sizeOf(text)})`);
  const named = new Set<string>();
  const checked = checkPolicySource(
    text,
    fileName,
    {
      ...readerless(nodeHost),
      readFile: (path) => {
        named.add(path);
        return "";
      },
    },
    mode,
  );
  if (named.size === 0) return { checked };
  const read = new Map<string, { text: string } | { error: unknown }>();
  for (const path of named) {
    try {
      progress?.(`reading set file ${path}`);
      read.set(path, { text: await readPolicyFileTextAsync(path, "set") });
    } catch (error) {
      read.set(path, { error });
    }
  }
  const host: PolicyHost = {
    ...readerless(nodeHost),
    readFile: (path, kind) => {
      const got = kind === "set" ? read.get(path) : undefined;
      if (!got) return nodeHost.readFile(path, kind);
      if ("error" in got) throw got.error;
      return got.text;
    },
  };
  return { host };
}

/** What `host` says besides reading files: where paths lead, its set store, its built-in sets. */
function readerless({ readFile: _, ...rest }: PolicyHost): Omit<PolicyHost, "readFile"> {
  return rest;
}

/** The accepted policy, or a PolicyError carrying every diagnostic. */
export function acceptedOrThrow(acceptance: Acceptance): LoadedPolicy {
  if (!acceptance.policy || hasErrors(acceptance.diagnostics))
    throw new PolicyError(acceptance.diagnostics);
  return acceptance.policy;
}

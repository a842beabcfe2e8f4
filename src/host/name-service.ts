// Lookups moat's DNS proxy cannot attribute: a name service that asks DNS from its own process
// (systemd-resolved through NSS `resolve`, a running nscd) sends the query as itself, so the
// binding goes to that daemon's identity, never to the process that looked the name up, and
// hostname rules do not match that process's connections.
import { readdirSync, readFileSync } from "node:fs";
import {
  diagnostic,
  isAddressOnly,
  type Diagnostic,
  type PolicyModel,
  type SourcePos,
} from "../config/index.ts";
import { perModel } from "../policy/per-model.ts";

export const NSSWITCH = "/etc/nsswitch.conf";

export interface NameServiceFiles {
  nsswitch?: string;
  procRoot?: string;
}

/** The `hosts:` sources of an nsswitch.conf text (actions like [NOTFOUND=return] left out). */
export function hostsSources(text: string): string[] {
  const line = text.split("\n").find((l) => /^\s*hosts\s*:/.test(l));
  if (!line) return [];
  return line
    .replace(/#.*$/, "")
    .replace(/^\s*hosts\s*:/, "")
    .replace(/\[[^\]]*\]/g, " ")
    .trim()
    .split(/\s+/)
    .filter(Boolean);
}

/** The pids whose comm is `name`. */
function pidsNamed(name: string, procRoot: string): number[] {
  let entries: string[];
  try {
    entries = readdirSync(procRoot);
  } catch {
    return [];
  }
  const out: number[] = [];
  for (const e of entries) {
    if (!/^\d+$/.test(e)) continue;
    try {
      if (readFileSync(`${procRoot}/${e}/comm`, "utf8").trim() === name) out.push(Number(e));
    } catch {
      // exited meanwhile
    }
  }
  return out;
}

/** One line per name service on this host whose lookups moat cannot attribute. */
export function nameServiceWarnings(files: NameServiceFiles = {}): string[] {
  const nsswitch = files.nsswitch ?? NSSWITCH;
  const out: string[] = [];
  let text = "";
  try {
    text = readFileSync(nsswitch, "utf8");
  } catch {
    // no nsswitch.conf: libc's default (files, dns) asks DNS from the process itself
  }
  if (hostsSources(text).includes("resolve"))
    out.push(
      `${nsswitch}: 'hosts:' uses 'resolve' (systemd-resolved): lookups through it are not seen by moat: the identity is lost (hostname rules do not match the asking process's connections); use 'dns' instead of 'resolve' (the stub at 127.0.0.53 stays usable)`,
    );
  const nscd = pidsNamed("nscd", files.procRoot ?? "/proc");
  if (nscd.length > 0)
    out.push(
      `nscd runs (pid ${nscd.join(", ")}): lookups through it are not seen by moat: the identity is lost (hostname rules do not match the asking process's connections); stop nscd's hosts cache ('enable-cache hosts no' in /etc/nscd.conf)`,
    );
  return out;
}

/** Where the policy first uses DNS names (a hostname entry or layer7.dns.name), or null. */
export const firstNameUse = perModel((model: PolicyModel): SourcePos | null => {
  for (const rule of model.rules) {
    const hostname = rule.layer3?.remote?.entries.find(
      (e) =>
        e.kind === "hostname" ||
        (e.kind === "set" &&
          !isAddressOnly(e.entries) &&
          e.entries.some((s) => s.kind === "hostname")),
    );
    if (hostname) return hostname.pos;
    if (rule.layer7?.dns?.name) return rule.layer7.pos;
  }
  return null;
});

/** The name-service warnings as diagnostics of a policy that uses names (none otherwise). */
export function nameServiceDiagnostics(model: PolicyModel, files?: NameServiceFiles): Diagnostic[] {
  const at = firstNameUse(model);
  if (!at) return [];
  return nameServiceWarnings(files).map((m) => diagnostic(at, m, "warning"));
}

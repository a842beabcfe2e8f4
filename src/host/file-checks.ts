// The files a policy names besides its set files (the audit log, the event history, the API
// token file and TLS files), checked as the daemon opens them (src/host/trusted-file.ts) without creating or
// changing anything, so `moat check` refuses what the daemon would: the audit log, the token
// and TLS files stop the daemon (errors); an unusable history leaves it running without one (a warning).
// attach.cgroup is looked up as the daemon attaches to it: a cgroup that is not there stops it.
import { statfsSync, statSync, type Stats } from "node:fs";
import { dirname, resolve } from "node:path";
import { findCgroup2Mount, missingCgroup } from "../attribution/cgroup-mount.ts";
import { diagnostic, type Diagnostic } from "../config/diagnostics.ts";
import { MAX_TOKEN_FILE_BYTES } from "./policy-files.ts";
import type { PolicyModel } from "../config/model.ts";
import { checkTrustedPath, UnsafeFileError } from "./trusted-file.ts";

/** The API's TLS files, as the daemon reads them: the key a secret, the certificate trusted. */
export const API_TLS_CERT = { what: "API TLS certificate", maxBytes: 1024 * 1024 };
export const API_TLS_KEY = { what: "API TLS key", maxBytes: 64 * 1024, secret: true };

export function namedFileProblems(model: PolicyModel): Diagnostic[] {
  const out: Diagnostic[] = [];
  const check = (
    at: Parameters<typeof diagnostic>[0],
    path: string,
    options: Parameters<typeof checkTrustedPath>[1],
    severity: "error" | "warning" = "error",
    note = "",
  ) => {
    try {
      if (options.write) checkCreatablePlace(path, options.what);
      checkTrustedPath(path, options);
    } catch (err) {
      if (!(err instanceof UnsafeFileError)) throw err;
      out.push(diagnostic(at, `${err.message}${note}`, severity));
    }
  };
  const cgroup = model.attach.cgroup;
  const missing = cgroup && cgroupProblem(cgroup.value);
  if (cgroup && missing) out.push(diagnostic(cgroup.pos, missing));
  const audit = model.logging.audit;
  if (audit) check(audit.pos, audit.value.path, { what: "audit log", write: true });
  const history = model.logging.history;
  if (history?.value.path)
    check(
      history.pos,
      history.value.path,
      { what: "event history", write: true },
      "warning",
      " (moat runs without its event history)",
    );
  const api = model.api;
  if (api?.value.tokenFile)
    check(api.pos, api.value.tokenFile, {
      what: "API token file",
      write: false,
      maxBytes: MAX_TOKEN_FILE_BYTES,
      secret: true,
    });
  const tls = api?.value.tls;
  if (api && tls) {
    check(api.pos, tls.cert, { ...API_TLS_CERT, write: false });
    check(api.pos, tls.key, { ...API_TLS_KEY, write: false });
  }
  return out;
}

/**
 * Why the socket hooks could not attach to cgroup `cgroup` (a path inside the cgroup v2
 * hierarchy), in the words of the daemon's attach (src/datapath/prerequisites.ts); null: they can,
 * or this is no place to tell (no cgroup v2 hierarchy here: a chroot or an image being built is
 * checked before it runs; the daemon's start says what is missing where it runs).
 */
function cgroupProblem(cgroup: string): string | null {
  const mount = findCgroup2Mount()?.mountPoint;
  return mount ? missingCgroup(cgroup, mount) : null;
}

/** Kernel interfaces, not storage (statfs f_type): no file moat writes can be made on them. */
const PSEUDO_FILESYSTEMS = new Map<number, string>([
  [0x9fa0, "proc"],
  [0x62656572, "sysfs"],
  [0x63677270, "cgroup2"],
  [0x27e0eb, "cgroup"],
  [0x64626720, "debugfs"],
  [0x74726163, "tracefs"],
  [0x73636673, "securityfs"],
  [0xcafe4a11, "bpf"],
  [0x1cd1, "devpts"],
  [0x62656570, "configfs"],
  [0xde5e81e4, "efivarfs"],
  [0x6165676c, "pstore"],
  [0x42494e4d, "binfmt_misc"],
  [0xf97cff8c, "selinuxfs"],
  [0x6e736673, "nsfs"],
]);

/**
 * A file moat creates (with the directories missing on the way) can be made where `path` points:
 * the nearest part of it that exists is the file itself or a directory, and not on a pseudo
 * filesystem (/proc, /sys), where creating fails only when the daemon gets to it.
 */
function checkCreatablePlace(path: string, what: string): void {
  const full = resolve(path);
  let at = full;
  let st = existingOrNone(at);
  while (!st && at !== dirname(at)) {
    at = dirname(at);
    st = existingOrNone(at);
  }
  if (!st) return;
  if (at !== full && !st.isDirectory())
    throw new UnsafeFileError(what, path, `${at} is not a directory`);
  const fs = PSEUDO_FILESYSTEMS.get(filesystemType(at));
  if (fs)
    throw new UnsafeFileError(
      what,
      path,
      `${at} is on ${fs}, a pseudo filesystem (the kernel's interface, not storage); name a file on disk`,
    );
}

/** stat of `path`; undefined when it (or a directory on the way) is missing or not a directory. */
function existingOrNone(path: string): Stats | undefined {
  try {
    return statSync(path);
  } catch {
    return undefined;
  }
}

/** statfs's f_type of the filesystem `path` is on; 0 when it cannot be asked. */
function filesystemType(path: string): number {
  try {
    return statfsSync(path).type;
  } catch {
    return 0;
  }
}

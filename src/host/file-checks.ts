// The files a policy names besides its set files (the audit log, the event history, the API
// token file), checked as the daemon opens them (src/host/trusted-file.ts) without creating or
// changing anything, so `moat check` refuses what the daemon would: the audit log and the token
// file stop the daemon (errors); an unusable history leaves it running without one (a warning).
import { diagnostic, type Diagnostic } from "../config/diagnostics.ts";
import { MAX_TOKEN_FILE_BYTES } from "./policy-files.ts";
import type { PolicyModel } from "../config/model.ts";
import { checkTrustedPath, UnsafeFileError } from "./trusted-file.ts";

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
      checkTrustedPath(path, options);
    } catch (err) {
      if (!(err instanceof UnsafeFileError)) throw err;
      out.push(diagnostic(at, `${err.message}${note}`, severity));
    }
  };
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
  return out;
}

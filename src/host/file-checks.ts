// The files a policy names besides its set files (the audit log, the event history, the API
// token file and TLS files), checked as the daemon opens them (src/host/trusted-file.ts) without creating or
// changing anything, so `moat check` refuses what the daemon would: the audit log, the token
// and TLS files stop the daemon (errors); an unusable history leaves it running without one (a warning).
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
  const tls = api?.value.tls;
  if (api && tls) {
    check(api.pos, tls.cert, { ...API_TLS_CERT, write: false });
    check(api.pos, tls.key, { ...API_TLS_KEY, write: false });
  }
  return out;
}

// moat policy apply FILE | confirm | validate FILE | show | replay FILE: the running daemon's
// policy, through the API (replay: policy-replay.ts). `apply --confirm 60s` applies on trial: the daemon reverts to the policy before it
// unless `moat policy confirm` comes in time. `apply --dry-run` validates and shows the diff.
import { readFileSync } from "node:fs";
import type { Command, Io } from "../command.ts";
import { UsageError } from "../command.ts";
import {
  API_OPTIONS,
  API_USAGE,
  apiTarget,
  ApiClientError,
  call,
  type ApiTarget,
} from "../api/client.ts";
import type { ApplyOutcome, PolicyView, ValidateResult } from "../../api/index.ts";
import { EXIT } from "../exit-codes.ts";
import { jsonLine } from "../json-line.ts";
import { unifiedDiff } from "../../policy/index.ts";
import { parseDuration } from "../time-args.ts";
import { policyReplay, REPLAY_OPTIONS, REPLAY_USAGE } from "./policy-replay.ts";
import { errorCount, namedAfter, runningPolicyPath } from "./policy-diagnostics.ts";

const USAGE = `moat policy apply FILE [--confirm DURATION | --dry-run] | confirm | validate FILE | show
             [--json] ${API_USAGE}
  apply: atomic; a bad policy is refused with its errors and the running one stays. The daemon
    saves the applied policy into its policy file.
  --confirm DURATION (e.g. 60s, 5m): apply on trial. It is not saved; unless 'moat policy
    confirm' comes within DURATION the daemon reverts to the policy before it.
  --dry-run: validate FILE with the daemon and show what would change (a diff against the
    running policy); nothing is applied. Exit 0 valid, 1 invalid.
  confirm: keep the policy on trial (saved). Exit 1 when none is (it was reverted already).
  show: the running policy's text (--json: path, text, hash, generation, mode, trial).
  ${REPLAY_USAGE}`;

const SHORT_USAGE =
  "moat policy apply FILE [--confirm DURATION | --dry-run] | confirm | validate FILE | show [--json]";

export const policyCommand: Command = {
  name: "policy",
  summary: "apply, validate or show the running daemon's policy (atomic; a bad policy is refused)",
  usage: USAGE,
  actions: ["apply", "confirm", "validate", "show", "replay"],
  options: {
    ...API_OPTIONS,
    ...REPLAY_OPTIONS,
    json: { type: "boolean" },
    confirm: { type: "string" },
    "dry-run": { type: "boolean" },
  },
  async run({ values, positionals }, io) {
    const [action, file] = positionals;
    if (action === "replay") return policyReplay(values, positionals, io);
    const json = values.json === true;
    const target = apiTarget(values);
    const wantsFile = action === "apply" || action === "validate";
    const known = wantsFile || action === "show" || action === "confirm";
    if (!known || (wantsFile ? !file || positionals.length > 2 : positionals.length > 1))
      throw new UsageError(`usage: ${SHORT_USAGE}`);
    if (action !== "apply" && (values.confirm !== undefined || values["dry-run"]))
      throw new UsageError("--confirm and --dry-run go with 'moat policy apply'");
    if (values.confirm !== undefined && values["dry-run"])
      throw new UsageError("--confirm and --dry-run exclude each other");
    if (action === "show") {
      const view = await call<PolicyView>(target, "GET", "/v1/policy");
      io.out(json ? jsonLine(view) : view.text.trimEnd());
      return EXIT.ok;
    }
    if (action === "confirm") return confirm(target, json, io);
    const text = readFileSync(file ?? "", "utf8");
    if (action === "validate" || values["dry-run"]) {
      const r = await call<ValidateResult>(target, "POST", "/v1/policy/validate", text);
      const diff =
        r.ok && values["dry-run"] ? await diffAgainstRunning(target, text, file ?? "") : undefined;
      if (json) io.out(jsonLine(diff ? { ...r, diff } : r));
      else {
        const diagnostics = [...r.errors, ...r.warnings];
        const running = diagnostics.length ? await runningPolicyPath(target) : undefined;
        for (const line of namedAfter(diagnostics, running, file ?? "")) io.out(line);
        for (const line of diff ?? []) io.out(line);
        if (diff && diff.length === 0) io.out(`${file}: the same as the running policy`);
        io.out(
          r.ok
            ? `${file}: ok${values["dry-run"] ? " (dry run: nothing applied)" : ""}`
            : `${file}: ${errorCount(r.errors.length)}`,
        );
      }
      return r.ok ? EXIT.ok : EXIT.failed;
    }
    const seconds =
      typeof values.confirm === "string"
        ? Math.ceil(parseDuration(values.confirm, "--confirm") / 1000)
        : undefined;
    if (seconds !== undefined && (seconds < 1 || seconds > 86_400))
      throw new UsageError("--confirm: a duration from 1s to 1d");
    const path = seconds === undefined ? "/v1/policy" : `/v1/policy?confirm=${seconds}`;
    try {
      const r = await call<ApplyOutcome>(target, "PUT", path, text);
      if (json) io.out(jsonLine(r));
      else if (r.revertAt)
        io.out(
          `applied ${file} on trial: generation ${r.generation}; it reverts at ${r.revertAt} ` +
            "unless 'moat policy confirm' comes first",
        );
      else io.out(`applied ${file}: generation ${r.generation}`);
      return EXIT.ok;
    } catch (err) {
      if (!(err instanceof ApiClientError) || err.status !== 422) throw err;
      if (json) io.out(jsonLine({ ok: false, errors: err.details }));
      const running = await runningPolicyPath(target);
      for (const line of namedAfter(err.details, running, file ?? "")) io.err(line);
      io.err(`moat: ${err.message}`);
      return EXIT.failed;
    }
  },
};

async function confirm(target: ApiTarget, json: boolean, io: Io): Promise<number> {
  try {
    const r = await call<ApplyOutcome>(target, "POST", "/v1/policy/confirm");
    io.out(json ? jsonLine(r) : `confirmed: generation ${r.generation} stays and is saved`);
    return EXIT.ok;
  } catch (err) {
    if (!(err instanceof ApiClientError) || err.status !== 409) throw err;
    if (json) io.out(jsonLine({ ok: false, errors: [err.message] }));
    io.err(`moat: ${err.message}`);
    return EXIT.failed;
  }
}

/** The running policy's text against `text`, as unified diff lines (none: the same). */
async function diffAgainstRunning(
  target: ApiTarget,
  text: string,
  file: string,
): Promise<string[]> {
  const running = await call<PolicyView>(target, "GET", "/v1/policy");
  return unifiedDiff(
    running.text,
    text,
    `running (${running.path}, generation ${running.generation})`,
    file,
  );
}

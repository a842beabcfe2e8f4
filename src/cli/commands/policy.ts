// moat policy apply FILE | validate FILE | show | replay FILE: the running daemon's policy,
// through the API (replay: policy-replay.ts).
import { readFileSync } from "node:fs";
import type { Command } from "../command.ts";
import { UsageError } from "../command.ts";
import { API_OPTIONS, API_USAGE, apiTarget, ApiClientError, call } from "../api/client.ts";
import type { ApplyOutcome, PolicyView, ValidateResult } from "../../api/index.ts";
import { policyReplay, REPLAY_OPTIONS, REPLAY_USAGE } from "./policy-replay.ts";

const USAGE = `moat policy apply FILE | validate FILE | show ${API_USAGE}\n  ${REPLAY_USAGE}`;

export const policyCommand: Command = {
  name: "policy",
  summary: "apply, validate or show the running daemon's policy (atomic; a bad policy is refused)",
  usage: USAGE,
  options: { ...API_OPTIONS, ...REPLAY_OPTIONS },
  async run({ values, positionals }, io) {
    const [action, file] = positionals;
    if (action === "replay") return policyReplay(values, positionals, io);
    const target = apiTarget(values);
    if (action === "show") {
      io.out((await call<PolicyView>(target, "GET", "/v1/policy")).text.trimEnd());
      return 0;
    }
    if ((action !== "apply" && action !== "validate") || !file || positionals.length > 2)
      throw new UsageError(`usage: ${USAGE}`);
    const text = readFileSync(file, "utf8");
    if (action === "validate") {
      const r = await call<ValidateResult>(target, "POST", "/v1/policy/validate", text);
      for (const line of [...r.errors, ...r.warnings]) io.out(line);
      io.out(r.ok ? `${file}: ok` : `${file}: ${r.errors.length} errors`);
      return r.ok ? 0 : 1;
    }
    try {
      const r = await call<ApplyOutcome>(target, "PUT", "/v1/policy", text);
      io.out(`applied ${file}: generation ${r.generation}`);
      return 0;
    } catch (err) {
      if (!(err instanceof ApiClientError) || err.status !== 422) throw err;
      for (const line of err.details) io.err(line);
      io.err(`moat: ${err.message}`);
      return 1;
    }
  },
};

// moat mode detect|prevent|policy: switch the running daemon's mode (a reload, not a restart). The
// mode is a local decision the daemon keeps with the others (decisions.json), over the policy
// file's mode, which is not rewritten; `policy` removes it: the file's mode runs again. `moat
// mode` alone says which mode runs and where it comes from.
import type { Command, Io } from "../command.ts";
import { UsageError } from "../command.ts";
import { API_OPTIONS, API_USAGE, apiTarget, call, type ApiTarget } from "../api/client.ts";
import type { ApplyOutcome, DecisionsView, PolicyView } from "../../api/index.ts";
import { jsonLine } from "../json-line.ts";

export const modeCommand: Command = {
  name: "mode",
  summary: "switch the running daemon between detect and prevent without a restart",
  usage: `moat mode [detect|prevent|policy] [--json] ${API_USAGE}\n  With no mode: the running mode, and whether it is the policy file's or set by 'moat mode'.`,
  actions: ["detect", "prevent", "policy"],
  options: { ...API_OPTIONS, json: { type: "boolean" } },
  async run({ values, positionals }, io) {
    const [mode] = positionals;
    if (mode === undefined) return showMode(apiTarget(values), values.json === true, io);
    if ((mode !== "detect" && mode !== "prevent" && mode !== "policy") || positionals.length !== 1)
      throw new UsageError("usage: moat mode [detect|prevent|policy]");
    const r = await call<ApplyOutcome>(
      apiTarget(values),
      "PUT",
      "/v1/mode",
      JSON.stringify({ mode }),
    );
    const said = mode === "policy" ? "mode of the policy file" : `mode ${mode}`;
    io.out(values.json ? jsonLine({ ...r, mode }) : `${said}: generation ${r.generation}`);
    return 0;
  },
};

/** The running mode and where it comes from: the policy file, or a `moat mode` decision. */
async function showMode(target: ApiTarget, json: boolean, io: Io): Promise<number> {
  const policy = await call<PolicyView>(target, "GET", "/v1/policy");
  const { mode: decided } = await call<DecisionsView>(target, "GET", "/v1/decisions");
  if (json) io.out(jsonLine({ mode: policy.mode, ...(decided ? { decided } : {}) }));
  else if (!decided) io.out(`mode: ${policy.mode} (the policy file's)`);
  else
    io.out(
      `mode: ${policy.mode} (set by ${decided.by} at ${decided.created} over the policy file's ` +
        "mode; 'moat mode policy' goes back to it)",
    );
  return 0;
}

// moat mode detect|prevent|policy: switch the running daemon's mode (a reload, not a restart). The
// mode is a local decision the daemon keeps with the others (decisions.json), over the policy
// file's mode, which is not rewritten; `policy` removes it: the file's mode runs again.
import type { Command } from "../command.ts";
import { UsageError } from "../command.ts";
import { API_OPTIONS, API_USAGE, apiTarget, call } from "../api/client.ts";
import type { ApplyOutcome } from "../../api/index.ts";
import { jsonLine } from "../json-line.ts";

export const modeCommand: Command = {
  name: "mode",
  summary: "switch the running daemon between detect and prevent without a restart",
  usage: `moat mode detect|prevent|policy [--json] ${API_USAGE}`,
  actions: ["detect", "prevent", "policy"],
  options: { ...API_OPTIONS, json: { type: "boolean" } },
  async run({ values, positionals }, io) {
    const [mode] = positionals;
    if ((mode !== "detect" && mode !== "prevent" && mode !== "policy") || positionals.length !== 1)
      throw new UsageError("usage: moat mode detect|prevent|policy");
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

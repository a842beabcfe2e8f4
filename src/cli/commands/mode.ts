// moat mode detect|prevent: switch the running daemon's mode (a reload, not a restart).
import type { Command } from "../command.ts";
import { UsageError } from "../command.ts";
import { API_OPTIONS, API_USAGE, apiTarget, call } from "../api/client.ts";
import type { ApplyOutcome } from "../../api/index.ts";
import { jsonLine } from "../json-line.ts";

export const modeCommand: Command = {
  name: "mode",
  summary: "switch the running daemon between detect and prevent without a restart",
  usage: `moat mode detect|prevent [--json] ${API_USAGE}`,
  actions: ["detect", "prevent"],
  options: { ...API_OPTIONS, json: { type: "boolean" } },
  async run({ values, positionals }, io) {
    const [mode] = positionals;
    if ((mode !== "detect" && mode !== "prevent") || positionals.length !== 1)
      throw new UsageError("usage: moat mode detect|prevent");
    const r = await call<ApplyOutcome>(
      apiTarget(values),
      "PUT",
      "/v1/mode",
      JSON.stringify({ mode }),
    );
    io.out(values.json ? jsonLine({ ...r, mode }) : `mode ${mode}: generation ${r.generation}`);
    return 0;
  },
};

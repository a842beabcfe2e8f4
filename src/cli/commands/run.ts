import type { Command } from "../command.ts";
import { startDaemon } from "../../daemon.ts";

export const runCommand: Command = {
  name: "run",
  summary: "run the moat daemon in the foreground (Ctrl-C detaches everything and exits)",
  usage:
    "moat run --policy FILE [--interface NAME_OR_GLOB]... [--json] [--no-pin | --pin-dir DIR]\n" +
    "  SIGHUP or a change of FILE reloads the policy; SIGUSR1 reopens the audit log.",
  options: {
    policy: { type: "string" },
    interface: { type: "string", multiple: true },
    json: { type: "boolean" },
    "no-pin": { type: "boolean" },
    "pin-dir": { type: "string" },
  },
  async run({ values }, io) {
    const policyPath = typeof values.policy === "string" ? values.policy : "examples/default.yaml";
    const pinDir = typeof values["pin-dir"] === "string" ? values["pin-dir"] : undefined;
    const daemon = startDaemon({
      policyPath,
      interfaces: values.interface as string[] | undefined,
      json: values.json === true,
      pinRoot: values["no-pin"] ? null : pinDir,
      log: io.out,
    });
    const handlers: [NodeJS.Signals, () => void][] = [
      ["SIGINT", () => daemon.stop()],
      ["SIGTERM", () => daemon.stop()],
      ["SIGHUP", () => daemon.reload("SIGHUP")],
      ["SIGUSR1", () => daemon.reopenLogs()],
    ];
    for (const [signal, handler] of handlers) process.on(signal, handler);
    io.out("moat is running; Ctrl-C to stop");
    await daemon.stopped;
    for (const [signal, handler] of handlers) process.off(signal, handler);
    return 0;
  },
};

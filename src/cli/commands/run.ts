import type { Command } from "../command.ts";
import { startDaemon } from "../../daemon.ts";

export const runCommand: Command = {
  name: "run",
  summary: "run the moat daemon in the foreground (Ctrl-C detaches everything and exits)",
  usage:
    "moat run [--policy FILE] [--interface NAME_OR_GLOB]... [--json] [--no-pin | --pin-dir DIR]",
  options: {
    policy: { type: "string" },
    interface: { type: "string", multiple: true },
    json: { type: "boolean" },
    "no-pin": { type: "boolean" },
    "pin-dir": { type: "string" },
  },
  async run({ values }, io) {
    const interfaces = (values.interface as string[] | undefined) ?? ["*"];
    const pinDir = typeof values["pin-dir"] === "string" ? values["pin-dir"] : undefined;
    const daemon = startDaemon({
      interfaces,
      json: values.json === true,
      pinRoot: values["no-pin"] ? null : pinDir,
      log: io.out,
    });
    const onSignal = () => daemon.stop();
    process.on("SIGINT", onSignal);
    process.on("SIGTERM", onSignal);
    io.out("moat is running; Ctrl-C to stop");
    await daemon.stopped;
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
    return 0;
  },
};

// moat run: the daemon in the foreground, until Ctrl-C; signals reload the policy and reopen logs.
import { flushCompileCache } from "node:module";
import { UsageError, type Command } from "../command.ts";
import type { Daemon } from "../../daemon.ts";

const SIGNALS = ["SIGINT", "SIGTERM", "SIGUSR2", "SIGHUP", "SIGUSR1"] as const;
type Signal = (typeof SIGNALS)[number];

function act(daemon: Daemon, signal: Signal): void {
  if (signal === "SIGINT" || signal === "SIGTERM") daemon.stop();
  // a restart (systemd's RestartKillSignal): the next daemon takes the pins over, no gap
  else if (signal === "SIGUSR2") daemon.stop({ handOver: true });
  else if (signal === "SIGHUP") void daemon.reload("SIGHUP");
  else daemon.reopenLogs();
}

/** Where `make run` installs the bundled policy; moat saves applied policies there. */
const DEFAULT_POLICY = "/etc/moat/policy.yaml";

export const runCommand: Command = {
  name: "run",
  summary: "run the moat daemon in the foreground (Ctrl-C detaches everything and exits)",
  outlivesOutput: true,
  usage:
    "moat run [--policy FILE] [--interface NAME_OR_GLOB]... [--json] [--no-pin | --pin-dir DIR]\n" +
    "         [--api unix:PATH | --api none] [--history FILE | --history none]\n" +
    "         [--decisions FILE | --decisions none] [--docker-root DIR]...\n" +
    "  --decisions: where moat keeps its local decisions (default /var/lib/moat/decisions.json;\n" +
    "  none: in memory only).\n" +
    "  --docker-root: the data root of a dockerd started with --data-root DIR (read for container\n" +
    "  names and images, in addition to /var/lib/docker).\n" +
    "  FILE defaults to /etc/moat/policy.yaml; `moat mode` and `moat policy apply` save into it.\n" +
    "  SIGHUP or a change of FILE reloads the policy; SIGUSR1 reopens the audit log.\n" +
    "  SIGTERM detaches everything; SIGUSR2 exits leaving the programs enforcing for the next\n" +
    "  daemon (a restart without a gap).",
  options: {
    policy: { type: "string" },
    interface: { type: "string", multiple: true },
    json: { type: "boolean" },
    "no-pin": { type: "boolean" },
    "pin-dir": { type: "string" },
    api: { type: "string" },
    history: { type: "string" },
    decisions: { type: "string" },
    "docker-root": { type: "string", multiple: true },
  },
  async run({ values }, io) {
    const policyPath = typeof values.policy === "string" ? values.policy : DEFAULT_POLICY;
    const pinDir = typeof values["pin-dir"] === "string" ? values["pin-dir"] : undefined;
    const api = typeof values.api === "string" ? values.api : undefined;
    if (api !== undefined && api !== "none" && !api.startsWith("unix:"))
      throw new UsageError(
        "--api takes unix:PATH or none (a TCP listener is set in the policy's api section)",
      );
    const history = typeof values.history === "string" ? values.history : undefined;
    const decisions = typeof values.decisions === "string" ? values.decisions : undefined;
    // handled from here on, never by the default action (death; Node's inspector on SIGUSR1): a
    // signal that comes while the daemon starts is acted on once it has started
    let daemon: Daemon | undefined;
    const pending: Signal[] = [];
    const handlers = SIGNALS.map((signal): [Signal, () => void] => [
      signal,
      () => {
        if (daemon) act(daemon, signal);
        else if (!pending.includes(signal)) {
          pending.push(signal);
          io.out(`${signal} while starting: acted on once started`);
        }
      },
    ]);
    for (const [signal, handler] of handlers) process.on(signal, handler);
    try {
      // before the rest of the daemon's modules load (the host's, which judge the directory, load
      // first): they and its worker threads' come from the compile cache once it holds them
      const { useCompileCache } = await import("../../host/index.ts");
      const cacheWarning = useCompileCache();
      // the daemon loads when it runs: `moat run --help` does not load it
      const { startDaemon } = await import("../../daemon.ts");
      const { daemonLog } = await import("./daemon-log.ts");
      const log = daemonLog(io.out);
      if (cacheWarning) log(cacheWarning);
      const started = await startDaemon({
        policyPath,
        interfaces: values.interface as string[] | undefined,
        json: values.json === true,
        pinRoot: values["no-pin"] ? null : pinDir,
        ...(api !== undefined ? { apiSocket: api === "none" ? null : api.slice(5) } : {}),
        ...(history !== undefined ? { historyPath: history === "none" ? null : history } : {}),
        ...(decisions !== undefined
          ? { decisionsPath: decisions === "none" ? null : decisions }
          : {}),
        ...(values["docker-root"] ? { dockerRoots: values["docker-root"] as string[] } : {}),
        log,
      });
      await started.ready;
      // the start's code in the cache now, not when the daemon exits (a SIGKILL writes nothing)
      flushCompileCache();
      daemon = started;
      io.out("moat is running; Ctrl-C to stop");
      // a stop that came during the start is the one thing left to do
      const stop = pending.find((s) => s !== "SIGHUP" && s !== "SIGUSR1");
      for (const signal of stop ? [stop] : pending) act(daemon, signal);
      await daemon.stopped;
    } finally {
      for (const [signal, handler] of handlers) process.off(signal, handler);
    }
    return 0;
  },
};

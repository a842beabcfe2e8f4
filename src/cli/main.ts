// moat's command-line entry point: the only place that exits the process.
import { commands } from "./commands/index.ts";
import { isUsageError, parseCommandArgs, UsageError, type Io } from "./command.ts";
import { VERSION } from "./version.ts";

/** Whether the running command goes on when its output's reader goes away (the daemon does). */
let outlivesOutput = false;
let outputClosed = false;

// a reader that goes away (`moat events | head`) ends the output, not with a stack trace; the
// daemon keeps enforcing and logging to its other sinks (an exit would leave its programs
// attached with nobody to reload or detach them)
process.stdout.on("error", (err: NodeJS.ErrnoException) => {
  if (err.code !== "EPIPE") throw err;
  if (!outlivesOutput) process.exit(0);
  if (outputClosed) return;
  outputClosed = true;
  io.err("moat: standard output closed; events go on to the audit log and the other sinks");
});

const io: Io = {
  out: (line) => {
    if (!outputClosed) process.stdout.write(`${line}\n`);
  },
  err: (line) => process.stderr.write(`${line}\n`),
};

function help(): string {
  const width = Math.max(...commands.map((c) => c.name.length));
  const lines = commands.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`);
  return [
    "moat: detect and prevent unknown network connections (eBPF)",
    "",
    "usage: moat <command> [options]",
    "",
    "commands:",
    ...lines,
    "",
    "moat <command> --help shows a command's usage.",
  ].join("\n");
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === "--help" || name === "-h" || name === "help") {
    io.out(help());
    return name ? 0 : 2;
  }
  if (name === "--version") {
    io.out(`moat ${VERSION}`);
    return 0;
  }
  const entry = commands.find((c) => c.name === name);
  if (!entry) throw new UsageError(`unknown command '${name}'\n\n${help()}`);
  const command = await entry.load();
  outlivesOutput = command.outlivesOutput === true;
  if (rest.includes("--help") || rest.includes("-h")) {
    io.out(`usage: ${command.usage}\n\n${command.summary}`);
    return 0;
  }
  return command.run(parseCommandArgs(command, rest), io);
}

/** What to do about a failure one of the machine's limits caused, by its code. */
const LIMIT_HINTS: Record<string, string> = {
  EMFILE: "raise the open files limit (ulimit -n; LimitNOFILE= in a systemd unit)",
  ENFILE: "the system's open files limit is reached (sysctl fs.file-max)",
};

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    if (isUsageError(err)) {
      io.err(`moat: ${err.message}`);
      process.exitCode = err.exitCode;
    } else if (err instanceof Error && "code" in err && typeof err.code === "string") {
      // expected failures carry a code: one sentence, no stack
      const hint = LIMIT_HINTS[err.code];
      io.err(`moat: ${err.message}${hint ? `\nmoat: ${hint}` : ""}`);
      process.exitCode = 1;
    } else {
      io.err(
        `moat: internal error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`,
      );
      process.exitCode = 70;
    }
  },
);

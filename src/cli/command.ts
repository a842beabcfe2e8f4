import { parseArgs, type ParseArgsConfig } from "node:util";

/** What a command writes to; tests pass their own. */
export interface Io {
  out: (line: string) => void;
  err: (line: string) => void;
}

/** An expected failure: the CLI prints `message` (no stack) and exits with `exitCode`. */
export class UsageError extends Error {
  readonly exitCode: number;
  constructor(message: string, exitCode = 2) {
    super(message);
    this.name = "UsageError";
    this.exitCode = exitCode;
  }
}

/**
 * A UsageError, also one made by another copy of this module (the CLI bundle loads the daemon's
 * command from src/, which has its own).
 */
export function isUsageError(err: unknown): err is UsageError {
  return (
    err instanceof Error &&
    err.name === "UsageError" &&
    typeof (err as { exitCode?: unknown }).exitCode === "number"
  );
}

export type OptionValues = Record<string, string | boolean | string[] | undefined>;

export interface Command {
  name: string;
  summary: string;
  usage: string;
  options?: ParseArgsConfig["options"];
  /** The words the first argument takes (`moat policy apply|confirm|...`), for completion. */
  actions?: string[];
  /** Runs on when its standard output's reader goes away, writing nothing more there. */
  outlivesOutput?: true;
  /** Resolves to the process exit code; only cli/main.ts exits. */
  run: (args: { values: OptionValues; positionals: string[] }, io: Io) => Promise<number>;
}

export function parseCommandArgs(command: Command, argv: string[]) {
  try {
    const { values, positionals } = parseArgs({
      args: argv,
      options: command.options ?? {},
      allowPositionals: true,
      strict: true,
    });
    return { values: values as OptionValues, positionals };
  } catch (err) {
    throw new UsageError(`${(err as Error).message}\nusage: ${command.usage}`);
  }
}

import type { Command } from "../command.ts";
import { runCommand } from "./run.ts";
import { checkCommand } from "./check.ts";
import { explainCommand } from "./explain.ts";

/** Every CLI command, in the order `moat --help` lists them. */
export const commands: Command[] = [runCommand, checkCommand, explainCommand];

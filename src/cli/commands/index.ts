import type { Command } from "../command.ts";
import { runCommand } from "./run.ts";
import { checkCommand } from "./check.ts";
import { explainCommand } from "./explain.ts";
import { statusCommand } from "./status.ts";
import { eventsCommand } from "./events.ts";
import { topCommand } from "./top.ts";
import { policyCommand } from "./policy.ts";
import { modeCommand } from "./mode.ts";

/** Every CLI command, in the order `moat --help` lists them. */
export const commands: Command[] = [
  runCommand,
  checkCommand,
  explainCommand,
  statusCommand,
  eventsCommand,
  topCommand,
  policyCommand,
  modeCommand,
];

// Man pages from the commands' own definitions (summary, usage text, options) and the exit-code
// table: moat(1) lists the commands, moat-COMMAND(1) is each command's page. One source: what
// `moat COMMAND --help` prints is what the page says.
import type { Command } from "../command.ts";
import { EXIT_TABLE } from "../exit-codes.ts";

export interface ManPage {
  /** File name, e.g. "moat-check.1". */
  file: string;
  text: string;
}

/** roff-safe text: backslashes, leading dots and quotes, and hyphens of options. */
export function roff(text: string): string {
  return text
    .replace(/\\/g, "\\e")
    .replace(/-/g, "\\-")
    .split("\n")
    .map((line) => (/^[.']/.test(line) ? `\\&${line}` : line))
    .join("\n");
}

/** Backquoted words (`moat check`) in bold. */
const bold = (text: string) => roff(text).replace(/`([^`]+)`/g, "\\fB$1\\fR");

function header(name: string, summary: string, version: string): string[] {
  return [
    `.TH ${name.toUpperCase()} 1 "" "moat ${version}" "moat manual"`,
    ".SH NAME",
    `${roff(name)} \\- ${roff(summary)}`,
  ];
}

function exitStatus(): string[] {
  const lines = [".SH EXIT STATUS"];
  for (const [code, meaning] of EXIT_TABLE) lines.push(".TP", `.B ${code}`, bold(meaning));
  return lines;
}

/** Every option the command takes, as its definition has it (the synopsis says what each is). */
function optionLines(command: Command): string[] {
  const options = Object.entries(command.options ?? {}).filter(([name]) => name !== "arrow");
  if (options.length === 0) return [];
  const lines = [".SH OPTIONS", ".nf"];
  for (const [name, o] of options) {
    const short = o.short ? `\\-${roff(o.short)}, ` : "";
    const value = o.type === "string" ? ` ${name.toUpperCase().replace(/-/g, "_")}` : "";
    lines.push(`${short}\\-\\-${roff(name)}${value}${o.multiple ? " (repeatable)" : ""}`);
  }
  lines.push("\\-h, \\-\\-help", ".fi");
  return lines;
}

/** moat-NAME(1): synopsis and description from the usage text, options from the definitions. */
export function commandPage(command: Command, version: string): ManPage {
  const [first = "", ...rest] = command.usage.split("\n");
  // the synopsis: the first line and the option lines that continue it ("  [--json] ...")
  const synopsisEnd = rest.findIndex((l) => !l.trim().startsWith("["));
  const synopsis = [first, ...rest.slice(0, synopsisEnd < 0 ? rest.length : synopsisEnd)];
  const description = synopsisEnd < 0 ? [] : rest.slice(synopsisEnd);
  const text = [
    ...header(`moat-${command.name}`, command.summary, version),
    ".SH SYNOPSIS",
    ".nf",
    roff(synopsis.map((l) => l.trim()).join("\n")),
    ".fi",
    ".SH DESCRIPTION",
    `${bold(command.summary)}.`,
    ...(description.length
      ? [".PP", ".nf", roff(description.map((l) => l.replace(/^ {2}/, "")).join("\n")), ".fi"]
      : []),
    ...optionLines(command),
    ...exitStatus(),
    ".SH SEE ALSO",
    "\\fBmoat\\fR(1)",
    "",
  ].join("\n");
  return { file: `moat-${command.name}.1`, text };
}

/** moat(1): what moat is, its commands with their summaries, the exit codes. */
export function mainPage(commands: readonly Command[], version: string): ManPage {
  const lines = [
    ...header("moat", "detect and prevent unknown network connections (eBPF)", version),
    ".SH SYNOPSIS",
    "\\fBmoat\\fR \\fICOMMAND\\fR [\\fIOPTIONS\\fR]",
    ".br",
    "\\fBmoat\\fR \\fICOMMAND\\fR \\fB\\-\\-help\\fR",
    ".SH DESCRIPTION",
    "moat is a Linux firewall: its kernel side is eBPF (XDP, TC and cgroup socket hooks); the",
    "daemon (\\fBmoat run\\fR) judges connections by a YAML policy and reports the ones it does",
    "not know, with the process behind them. The other commands check and explain policies or",
    "talk to the running daemon through its API socket (\\fI/run/moat/api.sock\\fR, root only).",
    ".SH COMMANDS",
  ];
  for (const c of commands)
    lines.push(".TP", `\\fBmoat\\-${roff(c.name)}\\fR(1)`, `${bold(c.summary)}.`);
  lines.push(
    ...exitStatus(),
    ".SH ENVIRONMENT",
    ".TP",
    ".B NO_COLOR",
    "When set (to anything), no output is coloured, even on a terminal.",
    ".SH FILES",
    ".TP",
    ".I /etc/moat/policy.yaml",
    "the installed daemon's policy",
    ".TP",
    ".I /run/moat/api.sock",
    "the daemon's API socket",
    ".TP",
    ".I /var/lib/moat/history.db",
    "the event history",
    ".SH SEE ALSO",
    commands.map((c) => `\\fBmoat\\-${roff(c.name)}\\fR(1)`).join(", "),
    "",
  );
  return { file: "moat.1", text: lines.join("\n") };
}

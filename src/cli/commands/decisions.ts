// moat decisions [list] | add allow|block REMOTE ... | remove ID: the running daemon's local
// decisions (docs/policy.md, "Local decisions"), through the API. They are judged before the
// policy file's rules and kept by moat, never written into the policy file.
import type { Command, Io } from "../command.ts";
import { UsageError } from "../command.ts";
import { API_OPTIONS, API_USAGE, apiTarget, call } from "../api/client.ts";
import type { DecisionBody, DecisionOutcome, DecisionsView } from "../../api/index.ts";
import { printable, type LocalDecision } from "../../config/index.ts";
import { EXIT } from "../exit-codes.ts";
import { jsonLine } from "../json-line.ts";

const SHORT_USAGE =
  "moat decisions [list] | add allow|block REMOTE --lifetime L [--direction D] [--protocol P] [--port N] [--process PATH [--user USER]] | remove ID";

const USAGE = `${SHORT_USAGE}
             [--json] ${API_USAGE}
  list (the default): every decision in force, with its lifetime and who made it.
  add: REMOTE is an IP address (a host), a DNS name (a domain) or *.name / **.name (a wildcard);
    --lifetime once | reboot | forever | a duration (1h, 30m, 90s); --direction egress (default)
    or ingress; --port goes with --protocol tcp or udp; --user (a uid or a user name) goes with
    --process: that program run by that user only (without it: whoever runs it). One for the
    same destination is replaced. An allow that expires or is removed cuts the connections it
    let through that the policy without it blocks (in prevent mode); the others go on, judged
    again.
  remove: the decision goes at once (as at expiry: what the policy then blocks is cut).`;

export const decisionsCommand: Command = {
  name: "decisions",
  summary: "list, add or remove the running daemon's local decisions (judged before the policy)",
  usage: USAGE,
  actions: ["list", "add", "remove"],
  options: {
    ...API_OPTIONS,
    json: { type: "boolean" },
    lifetime: { type: "string" },
    direction: { type: "string" },
    protocol: { type: "string" },
    port: { type: "string" },
    process: { type: "string" },
    user: { type: "string" },
  },
  async run({ values, positionals }, io) {
    const [action = "list", ...rest] = positionals;
    const target = apiTarget(values);
    const json = values.json === true;
    if (action === "list" && rest.length === 0) {
      const view = await call<DecisionsView>(target, "GET", "/v1/decisions");
      if (json) io.out(jsonLine(view));
      else {
        if (view.mode)
          io.out(
            `mode ${view.mode.mode}  (by ${view.mode.by} at ${view.mode.created}; moat mode policy: the file's mode)`,
          );
        printDecisions(view.decisions, io);
      }
      return EXIT.ok;
    }
    if (action === "add" && rest.length === 2) {
      const outcome = await call<DecisionOutcome>(
        target,
        "POST",
        "/v1/decisions",
        JSON.stringify(decisionBody(rest[0] ?? "", rest[1] ?? "", values)),
      );
      printOutcome(outcome, "made", json, io);
      return EXIT.ok;
    }
    if (action === "remove" && rest.length === 1) {
      const id = encodeURIComponent(rest[0] ?? "");
      const outcome = await call<DecisionOutcome>(target, "DELETE", `/v1/decisions?id=${id}`);
      printOutcome(outcome, "removed", json, io);
      return EXIT.ok;
    }
    throw new UsageError(`usage: ${SHORT_USAGE}`);
  },
};

function decisionBody(
  action: string,
  remote: string,
  values: Record<string, unknown>,
): DecisionBody {
  if (action !== "allow" && action !== "block")
    throw new UsageError("moat decisions add allow|block REMOTE --lifetime L");
  const lifetime = values.lifetime;
  if (typeof lifetime !== "string")
    throw new UsageError("--lifetime: once, reboot, forever or a duration (1h, 30m, 90s)");
  const direction = values.direction ?? "egress";
  if (direction !== "egress" && direction !== "ingress")
    throw new UsageError("--direction: egress or ingress");
  const protocol = values.protocol;
  const port = values.port === undefined ? undefined : Number(values.port);
  const user = values.user;
  if (typeof user === "string" && typeof values.process !== "string")
    throw new UsageError("--user goes with --process PATH: a decision names a user's program");
  return {
    action,
    direction,
    remote,
    lifetime,
    ...(typeof protocol === "string" ? { protocol: protocol as DecisionBody["protocol"] } : {}),
    ...(port !== undefined ? { port } : {}),
    ...(typeof values.process === "string"
      ? {
          process: {
            path: values.process,
            ...(typeof user === "string" ? { user: userOf(user) } : {}),
          },
        }
      : {}),
  };
}

/** Digits are a uid, sent as that number (one too long to be a uid stays, for moat to refuse). */
const userOf = (text: string): number | string =>
  /^\d+$/.test(text) && Number.isSafeInteger(Number(text)) ? Number(text) : text;

/** One line a decision: what it does, for how long, who made it (escaped: a path is anyone's). */
export function decisionLine(d: LocalDecision): string {
  const proto = d.protocol ? ` ${d.protocol}` : "";
  const port = d.port ? ` port ${d.port}` : "";
  const runBy = d.process?.user !== undefined ? ` run by ${userText(d.process.user)}` : "";
  const who = d.process ? ` for ${d.process.path}${runBy}` : "";
  const until = d.expires ? ` until ${d.expires}` : d.lifetime === "reboot" ? " until reboot" : "";
  return printable(
    `decision:${d.id}  ${d.action} ${d.direction}${proto} ${d.remote}${port}${who}  (${d.lifetime}${until}; by ${d.by})`,
  );
}

const userText = (user: number | string): string =>
  typeof user === "number" ? `uid ${user}` : `user ${user}`;

function printDecisions(list: LocalDecision[], io: Io): void {
  if (list.length === 0) io.out("no local decisions");
  for (const d of list) io.out(decisionLine(d));
}

export function printOutcome(outcome: DecisionOutcome, what: string, json: boolean, io: Io): void {
  if (json) io.out(jsonLine(outcome));
  else if (outcome.ok)
    io.out(`${what} ${decisionLine(outcome.decision)}: generation ${outcome.generation}`);
}

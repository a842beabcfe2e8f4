// Every CLI command, in the order `moat --help` lists them. A command's module is loaded only when
// it runs: `moat status` or `moat mode` loads the CLI and its API client, never the daemon, the
// datapath or the policy loader (a unit test checks the summaries here are the commands' own).
import type { Command } from "../command.ts";

export interface CommandEntry {
  name: string;
  summary: string;
  load: () => Promise<Command>;
}

export const commands: CommandEntry[] = [
  {
    name: "run",
    summary: "run the moat daemon in the foreground (Ctrl-C detaches everything and exits)",
    load: async () => (await import("./run.ts")).runCommand,
  },
  {
    name: "check",
    summary:
      "validate policy files as the daemon would: every error and warning with FILE:LINE:COL",
    load: async () => (await import("./check.ts")).checkCommand,
  },
  {
    name: "explain",
    summary: "show which rule decides a connection, the verdict and why",
    load: async () => (await import("./explain.ts")).explainCommand,
  },
  {
    name: "status",
    summary: "show the running daemon's mode, policy, hooks, counters and losses",
    load: async () => (await import("./status.ts")).statusCommand,
  },
  {
    name: "events",
    summary: "print stored events, or follow live ones (--follow), with filters",
    load: async () => (await import("./events.ts")).eventsCommand,
  },
  {
    name: "rules",
    summary: "per-rule counters of the running policy: connections, packets, bytes, by verdict",
    load: async () => (await import("./rules.ts")).rulesCommand,
  },
  {
    name: "stats",
    summary:
      "show flow statistics: connections and bytes per process, peer and port, with verdicts",
    load: async () => (await import("./stats.ts")).statsCommand,
  },
  {
    name: "suggest",
    summary:
      "suggest least-privilege rules learnt from the flow statistics, as a diff of the policy file",
    load: async () => (await import("./suggest.ts")).suggestCommand,
  },
  {
    name: "anomalies",
    summary: "list the anomalies detected per identity, or accept one as normal",
    load: async () => (await import("./anomalies.ts")).anomaliesCommand,
  },
  {
    name: "decisions",
    summary: "list, add or remove the running daemon's local decisions (judged before the policy)",
    load: async () => (await import("./decisions.ts")).decisionsCommand,
  },
  {
    name: "review",
    summary: "decide about unknown connections waiting in the review queue (allow or block)",
    load: async () => (await import("./review.ts")).reviewCommand,
  },
  {
    name: "top",
    summary: "live view of the top blocked/detected remotes, processes and rules",
    load: async () => (await import("./top.ts")).topCommand,
  },
  {
    name: "console",
    summary: "print a one-time link that opens the web console (live view, playground)",
    load: async () => (await import("./console.ts")).consoleCommand,
  },
  {
    name: "policy",
    summary:
      "apply, validate or show the running daemon's policy (atomic; a bad policy is refused)",
    load: async () => (await import("./policy.ts")).policyCommand,
  },
  {
    name: "ssh-authkeys",
    summary:
      "for sshd's AuthorizedKeysCommand: print the client keys the running policy allows for a login",
    load: async () => (await import("./ssh-authkeys.ts")).sshAuthkeysCommand,
  },
  {
    name: "mode",
    summary: "switch the running daemon between detect and prevent without a restart",
    load: async () => (await import("./mode.ts")).modeCommand,
  },
  {
    name: "fleet",
    summary: "events and policy of every host, through the fleet's NATS JetStream cluster",
    load: async () => (await import("./fleet.ts")).fleetCommand,
  },
  {
    name: "set",
    summary:
      "add to or remove from a dynamic set of the running daemon; list dynamic sets and feeds",
    load: async () => (await import("./set.ts")).setCommand,
  },
  {
    name: "cleanup",
    summary: "remove what a crashed or killed daemon left: pinned programs, links, maps, socket",
    load: async () => (await import("./cleanup.ts")).cleanupCommand,
  },
];
